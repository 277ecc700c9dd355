"""Stopping and restarting a serving registry loses no request: SIGTERM lets requests in
progress finish (up to --shutdown-timeout), uploads stay resumable across a restart, and a
rolling restart of two replicas behind a balancer fails nothing."""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import s3_postgres_env
from tests.support.balancer import Balancer
from tests.support.push import OCI_MANIFEST, image_manifest, sha256, unique_repo
from tests.support.server import RunningRegistry, free_port


def terminate(server: RunningRegistry) -> float:
    """SIGTERM to the server's main process only (as systemd's KillMode=mixed does); the
    seconds it took to exit."""
    assert server.proc is not None
    began = time.monotonic()
    os.kill(server.proc.pid, signal.SIGTERM)
    server.proc.wait(60)
    return time.monotonic() - began


def slow_body(chunks: list[bytes], pause: float, started: threading.Event) -> Iterator[bytes]:
    for index, chunk in enumerate(chunks):
        if index == 1:
            started.set()
        time.sleep(pause)
        yield chunk


def test_upload_in_flight_at_sigterm_completes_and_resumes_after_restart(tmp_path: Path) -> None:
    server = RunningRegistry(
        data_dir=tmp_path / "data", port=free_port(), args=["--workers", "1"]
    ).start()
    try:
        repo = unique_repo("drain")
        chunks = [os.urandom(128 * 1024) for _ in range(12)]
        first = b"".join(chunks)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            start = client.post(f"/v2/{repo}/blobs/uploads/")
            assert start.status_code == 202, start.text
            location = start.headers["Location"]
            started = threading.Event()
            outcome: dict[str, object] = {}

            def send() -> None:
                try:
                    outcome["response"] = client.patch(
                        location,
                        content=slow_body(chunks, 0.25, started),
                        headers={"Content-Type": "application/octet-stream"},
                    )
                except httpx.HTTPError as exc:
                    outcome["error"] = exc

            # An idle keep-alive connection, as a client pool holds one.
            idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            idle.sendall(b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n")
            assert idle.recv(65536).startswith(b"HTTP/1.1 200")
            sender = threading.Thread(target=send)
            sender.start()
            assert started.wait(10)
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGTERM)
            # The idle connection is closed by the server at once, not left to time out.
            began = time.monotonic()
            assert idle.recv(65536) == b""
            assert time.monotonic() - began < 3
            idle.close()
            # The listener closes at once: a new connection is refused while the upload is
            # still being received.
            time.sleep(0.5)
            with pytest.raises(httpx.ConnectError):
                httpx.get(server.url + "/v2/", timeout=2)
            assert sender.is_alive()
            sender.join(30)
            assert "error" not in outcome, outcome
            response = outcome["response"]
            assert isinstance(response, httpx.Response)
            assert response.status_code == 202, response.text
            assert response.headers["Range"] == f"0-{len(first) - 1}"
            # The server told the client not to reuse the connection.
            assert response.headers.get("connection") == "close"
        assert server.proc.wait(30) == 0

        # The upload continues on the same folder after the restart.
        server.start()
        second = os.urandom(64 * 1024)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            status = client.get(location)
            assert status.status_code == 204
            assert status.headers["Range"] == f"0-{len(first) - 1}"
            more = client.patch(
                location,
                content=second,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{len(first)}-{len(first) + len(second) - 1}",
                },
            )
            assert more.status_code == 202, more.text
            digest = sha256(first + second)
            done = client.put(more.headers["Location"], params={"digest": digest})
            assert done.status_code == 201, done.text
            assert client.get(f"/v2/{repo}/blobs/{digest}").content == first + second
    finally:
        server.stop()


def test_shutdown_timeout_bounds_a_request_that_never_finishes(tmp_path: Path) -> None:
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        args=["--workers", "1", "--shutdown-timeout", "2"],
        env={"DOCKYARD_BODY_TIMEOUT_SECONDS": "600"},
    ).start()
    try:
        repo = unique_repo("stuck")
        with httpx.Client(base_url=server.url, timeout=60) as client:
            location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        stop_sending = threading.Event()
        started = threading.Event()

        def endless() -> Iterator[bytes]:
            while not stop_sending.is_set():
                started.set()
                yield b"x" * 1024
                time.sleep(0.2)

        def send() -> None:
            try:
                with httpx.Client(base_url=server.url, timeout=60) as client:
                    client.patch(location, content=endless())
            except httpx.HTTPError:
                pass  # cut off when the deadline passes: that is the point

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        assert started.wait(10)
        took = terminate(server)
        stop_sending.set()
        # Two seconds of grace, and not the body timeout of ten minutes.
        assert 1.5 < took < 10, took
        sender.join(10)
    finally:
        server.stop()


def test_shutdown_timeout_is_a_setting(tmp_path: Path) -> None:
    """Flag, environment and config file name the same setting, and it is range-checked."""
    import subprocess
    import sys

    def show(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dockyard", "config", "show", *args],
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )

    assert "shutdown_timeout_seconds: 30" in show().stdout
    shown = show(env={"DOCKYARD_SHUTDOWN_TIMEOUT_SECONDS": "45"})
    assert "shutdown_timeout_seconds: 45" in shown.stdout
    config = tmp_path / "dockyard.yaml"
    config.write_text("shutdown_timeout_seconds: 0\n")
    refused = show("--config", str(config))
    assert refused.returncode == 2
    assert "shutdown_timeout_seconds" in refused.stderr


class Load:
    """Pushes and pulls in several threads through one address, counting every failure."""

    def __init__(self, base: str, threads: int = 3) -> None:
        self.base = base
        self.failures: list[str] = []
        self.rounds = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _expect(self, response: httpx.Response, status: int, what: str) -> None:
        if response.status_code != status:
            raise AssertionError(f"{what}: {response.status_code} {response.text[:200]}")

    def _round(self, client: httpx.Client, repo: str, number: int) -> None:
        # A chunked upload in two PATCHes, so that its requests may land on both replicas.
        data = os.urandom(random.randint(1, 64) * 1024)
        start = client.post(f"/v2/{repo}/blobs/uploads/")
        self._expect(start, 202, "start upload")
        half = len(data) // 2
        first = client.patch(
            start.headers["Location"],
            content=data[:half],
            headers={"Content-Range": f"0-{half - 1}"},
        )
        self._expect(first, 202, "first chunk")
        second = client.patch(
            first.headers["Location"],
            content=data[half:],
            headers={"Content-Range": f"{half}-{len(data) - 1}"},
        )
        self._expect(second, 202, "second chunk")
        done = client.put(second.headers["Location"], params={"digest": sha256(data)})
        self._expect(done, 201, "finish upload")
        manifest = image_manifest(client, repo)
        tag = f"r{number}"
        put = client.put(
            f"/v2/{repo}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        self._expect(put, 201, "push manifest")
        pulled = client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
        self._expect(pulled, 200, "pull manifest")
        if pulled.content != manifest:
            raise AssertionError("pulled another manifest than pushed")
        blob = client.get(f"/v2/{repo}/blobs/{sha256(data)}")
        self._expect(blob, 200, "pull blob")
        if blob.content != data:
            raise AssertionError("pulled other bytes than pushed")

    def _run(self, index: int) -> None:
        repo = unique_repo(f"load{index}")
        number = 0
        with httpx.Client(base_url=self.base, timeout=60) as client:
            while not self._stop.is_set():
                number += 1
                try:
                    self._round(client, repo, number)
                except (AssertionError, httpx.HTTPError) as exc:
                    with self._lock:
                        self.failures.append(f"{repo} round {number}: {exc!r}")
                with self._lock:
                    self.rounds += 1


@pytest.mark.parametrize("backend", ["filesystem+sqlite", "s3+postgresql"])
def test_rolling_restart_of_two_replicas_fails_no_request(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    env: dict[str, str] = {}
    if backend == "s3+postgresql":
        # One bucket and one database for both replicas; each its own data folder.
        env = s3_postgres_env(
            request.getfixturevalue("s3_server"),
            request.getfixturevalue("pg_cluster"),
            redirect=False,
        )
    replicas = [
        RunningRegistry(
            # Filesystem and SQLite: one folder for both replicas.
            data_dir=tmp_path / ("data" if not env else f"data{index}"),
            port=free_port(),
            args=["--workers", "1", "--shutdown-timeout", "20"],
            env=env,
            log_dir=tmp_path,
        )
        for index in range(2)
    ]
    balancer = None
    try:
        for replica in replicas:
            replica.start()
        balancer = Balancer([r.url for r in replicas]).start()
        with Load(balancer.url) as load:
            time.sleep(2)
            for replica in replicas:
                before = load.rounds
                took = terminate(replica)
                assert took < 20, took
                replica.start()
                # The restarted replica takes requests again before the other one stops.
                deadline = time.monotonic() + 30
                while load.rounds < before + 6 and time.monotonic() < deadline:
                    time.sleep(0.2)
            time.sleep(1)
        assert load.failures == [], load.failures
        assert load.rounds >= 12
        # The restarts were seen (and hidden only as a balancer may: by sending a request that
        # was refused, or dropped unanswered, to the other replica).
        assert any("refused" in r for r in balancer.retries), balancer.retries
        assert all("refused" in r or "without answering" in r for r in balancer.retries)
        for replica in replicas:
            assert replica.proc is not None and replica.proc.poll() is None
            assert "Traceback" not in replica.log()
    finally:
        if balancer is not None:
            balancer.stop()
        for replica in replicas:
            replica.stop()
