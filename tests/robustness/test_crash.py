"""kill -9 at any moment: after a restart, everything acknowledged is served intact and nothing
half-written is visible."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from pathlib import Path

import httpx

from tests.support.fsck import run_fsck
from tests.support.push import image_manifest, push_manifest, sha256


def verify_store(data_dir: Path) -> None:
    """Every committed blob file hashes to its name; the database is consistent."""
    for path in (data_dir / "blobs").rglob("*"):
        if path.is_file():
            algorithm = path.parent.parent.name
            assert hashlib.new(algorithm, path.read_bytes()).hexdigest() == path.name, path
    with sqlite3.connect(data_dir / "metadata.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_kill_during_uploads_and_pushes_loses_nothing_acknowledged(
    start_registry, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    server = start_registry(data_dir=data)
    acknowledged_blobs: list[tuple[str, str, bytes]] = []
    acknowledged_tags: list[tuple[str, str, str]] = []
    stop = threading.Event()

    def small_pushes(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            i = 0
            while not stop.is_set():
                repo = f"crash/w{worker}"
                try:
                    body = image_manifest(c, repo)
                    digest = push_manifest(c, repo, f"t{i}", body)
                except (httpx.HTTPError, AssertionError):
                    return
                acknowledged_tags.append((repo, f"t{i}", digest))
                i += 1

    def big_upload() -> None:
        data_bytes = os.urandom(1024 * 1024)

        def body():
            for _ in range(4096):  # 4 GiB if nobody stops it: it is always cut by the kill
                yield data_bytes

        with httpx.Client(base_url=server.url, timeout=30) as c:
            location = c.post("/v2/crash/big/blobs/uploads/").headers["Location"]
            with contextlib.suppress(httpx.HTTPError):
                c.patch(location, content=body())

    def chunked_uploads() -> None:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            while not stop.is_set():
                blob = os.urandom(300_000)
                try:
                    location = c.post("/v2/crash/chunks/blobs/uploads/").headers["Location"]
                    for offset in range(0, len(blob), 100_000):
                        resp = c.patch(
                            location,
                            content=blob[offset : offset + 100_000],
                            headers={"Content-Range": f"{offset}-{offset + 99_999}"},
                        )
                        location = resp.headers["Location"]
                    done = c.put(location, params={"digest": sha256(blob)})
                except httpx.HTTPError:
                    return
                if done.status_code == 201:
                    acknowledged_blobs.append(("crash/chunks", sha256(blob), blob))

    threads = [threading.Thread(target=small_pushes, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=big_upload), threading.Thread(target=chunked_uploads)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(30)
    assert acknowledged_tags and acknowledged_blobs, "the load did not get going before the kill"

    verify_store(data)
    report = run_fsck(data)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "0 bad blobs, 0 problems" in report.stdout
    restarted = start_registry(data_dir=data)
    with httpx.Client(base_url=restarted.url, timeout=30) as c:
        for repo, tag, digest in acknowledged_tags:
            resp = c.get(f"/v2/{repo}/manifests/{tag}")
            assert resp.status_code == 200, (repo, tag)
            assert sha256(resp.content) == digest
        for repo, digest, blob in acknowledged_blobs:
            assert c.get(f"/v2/{repo}/blobs/{digest}").content == blob
        # The registry still takes writes after the crash.
        body = image_manifest(c, "crash/after")
        push_manifest(c, "crash/after", "ok", body)
