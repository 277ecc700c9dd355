"""`/healthz` and `/readyz`: no authentication, and readiness follows the stores: 503 with the
reason while storage takes no write or the metadata store does not answer, 200 again after."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.auth.conftest import QUIET
from tests.auth.helpers import ADMIN_PASSWORD
from tests.support.postgres import PostgresCluster, pg_bin
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedS3
from tests.support.server import RunningRegistry


def wait_for_ready(
    url: str, status: int, because: str | None = None, timeout: float = 30.0
) -> httpx.Response:
    """Ask until the answer is `status` (with the reason `because`). Each worker keeps its
    answer for a second: right after a change, another may still give the one before."""
    deadline = time.monotonic() + timeout
    while True:
        response = httpx.get(url + "/readyz", timeout=15.0)
        if response.status_code == status and (because is None or reason(response) == because):
            return response
        assert time.monotonic() < deadline, (response.status_code, response.text)
        time.sleep(0.2)


def reason(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json")
    (error,) = response.json()["errors"]
    assert error["code"] == "UNAVAILABLE"
    return error["message"]


def test_health_needs_no_credentials_with_accounts_on(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    server = start_registry("--auth", env={**QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD})
    health = httpx.get(server.url + "/healthz")
    assert (health.status_code, health.text) == (200, "ok\n")
    ready = httpx.get(server.url + "/readyz")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    assert ready.headers["cache-control"] == "no-store"
    assert httpx.post(server.url + "/readyz").status_code == 405


def test_readyz_follows_a_filesystem_that_takes_no_write(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    server = start_registry()
    wait_for_ready(server.url, 200)
    # Tests run as root, whom permissions do not stop: the uploads folder becomes a file.
    uploads = server.data_dir / "uploads"
    aside = server.data_dir / "uploads.aside"
    uploads.rename(aside)
    uploads.write_bytes(b"")
    try:
        broken = wait_for_ready(server.url, 503, "not ready: blob storage is not writable")
        assert str(server.data_dir) not in broken.text
        assert httpx.get(server.url + "/healthz").status_code == 200  # the process answers
    finally:
        uploads.unlink()
        aside.rename(uploads)
    wait_for_ready(server.url, 200)


def _pg_ctl(cluster: PostgresCluster, *action: str) -> None:
    subprocess.run(
        [
            "runuser",
            "-u",
            "postgres",
            "--",
            pg_bin("pg_ctl"),
            "-D",
            str(cluster.root / "data"),
            "-l",
            str(cluster.root / "pg.log"),
            "-w",
            *action,
        ],
        check=True,
        capture_output=True,
    )


def test_readyz_follows_s3_and_postgresql(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    # Peers of this test's own: it stops them, which would break any other test using them.
    s3 = SeaweedS3(tmp_path / "s3").start()
    pg = PostgresCluster().start()
    try:
        database = pg.create_database()
        bucket = s3.create_bucket()
        server = start_registry(
            env={
                "DOCKYARD_STORAGE": f"s3://{bucket}/registry",
                "DOCKYARD_S3_ENDPOINT": s3.endpoint,
                "DOCKYARD_S3_PATH_STYLE": "true",
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "DOCKYARD_METADATA": database,
            }
        )
        wait_for_ready(server.url, 200)

        assert s3.proc is not None
        os.killpg(s3.proc.pid, signal.SIGSTOP)  # S3 hangs: the check's own deadline answers
        try:
            broken = wait_for_ready(server.url, 503, "not ready: blob storage is not writable")
        finally:
            os.killpg(s3.proc.pid, signal.SIGCONT)
        for secret in (SECRET_KEY, ACCESS_KEY, bucket, s3.endpoint):
            assert secret not in broken.text
        wait_for_ready(server.url, 200)

        _pg_ctl(pg, "-m", "fast", "stop")
        try:
            broken = wait_for_ready(server.url, 503, "not ready: metadata store is unreachable")
        finally:
            _pg_ctl(
                pg,
                "-o",
                f"-c listen_addresses=127.0.0.1 -p {pg.port} -k {pg.root} -c fsync=off",
                "start",
            )
        assert database.rsplit("/", 1)[1] not in broken.text
        wait_for_ready(server.url, 200)
        server.stop()
    finally:
        s3.stop()
        pg.stop()
        shutil.rmtree(tmp_path / "s3", ignore_errors=True)
