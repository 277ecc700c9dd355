"""Stalled clients, huge uploads and a full disk: answered clearly, nothing half-acknowledged."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.push import error_code, push_blob, sha256, unique_repo


def group_rss_kib(pid: int) -> int:
    """Resident memory of a server and all its worker processes."""
    out = subprocess.run(
        ["ps", "-o", "rss=", "--ppid", str(pid), "-p", str(pid)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(int(x) for x in out.split())


def test_stalled_client_is_cut_off_and_nothing_is_acknowledged(start_registry) -> None:
    server = start_registry(env={"DOCKYARD_BODY_TIMEOUT_SECONDS": "1.5"})
    repo = unique_repo()
    with httpx.Client(base_url=server.url) as c:
        location = c.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(
            f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode()
            + b"only ten b"
        )
        reply = sock.recv(65536)
    # Either an explicit 408 or a closed connection: never an acknowledged partial chunk.
    assert reply == b"" or reply.startswith(b"HTTP/1.1 408")
    with httpx.Client(base_url=server.url) as c:
        assert c.get(location).headers["Range"] == "0-0"


def test_large_upload_keeps_memory_flat(registry) -> None:
    repo = unique_repo()
    block = os.urandom(1024 * 1024)
    total_mib = 1024
    digest = __import__("hashlib").sha256()
    for _ in range(total_mib):
        digest.update(block)
    before = group_rss_kib(registry.proc.pid)
    peak = before

    def body():
        nonlocal peak
        for i in range(total_mib):
            if i % 64 == 0:
                peak = max(peak, group_rss_kib(registry.proc.pid))
            yield block

    with httpx.Client(base_url=registry.url, timeout=120) as c:
        location = c.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        resp = c.patch(location, content=body())
        assert resp.status_code == 202
        done = c.put(resp.headers["Location"], params={"digest": "sha256:" + digest.hexdigest()})
        assert done.status_code == 201
    peak = max(peak, group_rss_kib(registry.proc.pid))
    growth_mib = (peak - before) / 1024
    assert growth_mib < 48, f"server memory grew by {growth_mib:.0f} MiB during a 1 GiB upload"


@pytest.fixture
def small_disk(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write a file on `disk` until it is full; the file, to free the disk by removing it."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(os.urandom(1024 * 1024))
                f.flush()
        except OSError:
            pass
    return filler


def test_full_disk_answers_clearly_and_acknowledges_nothing(start_registry, small_disk) -> None:
    server = start_registry(data_dir=small_disk / "data")
    repo = unique_repo()
    kept: list[tuple[str, bytes]] = []
    with httpx.Client(base_url=server.url, timeout=60) as c:
        failure = None
        for _ in range(40):
            blob = os.urandom(1024 * 1024)
            resp = c.post(
                f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob
            )
            if resp.status_code != 201:
                failure = (resp, blob)
                break
            kept.append((sha256(blob), blob))
        assert failure is not None, "the 24 MiB disk never filled up"
        resp, blob = failure
        assert resp.status_code == 507
        assert error_code(resp) == "INSUFFICIENT_STORAGE"
        assert c.head(f"/v2/{repo}/blobs/{sha256(blob)}").status_code == 404
        for digest, content in kept:
            assert c.get(f"/v2/{repo}/blobs/{digest}").content == content
        # Still alive and still answering reads and small writes fail cleanly too.
        assert c.get("/v2/").status_code == 200
        time.sleep(0.1)
        again = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob)
        assert again.status_code == 507


def test_blob_push_still_works_after_disk_frees(start_registry, small_disk) -> None:
    server = start_registry(data_dir=small_disk / "data")
    filler = fill(small_disk)
    repo = unique_repo()
    blob = os.urandom(2 * 1024 * 1024)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        resp = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob)
        assert resp.status_code == 507
        filler.unlink()
        assert push_blob(c, repo, blob) == sha256(blob)
        assert c.get(f"/v2/{repo}/blobs/{sha256(blob)}").content == blob


def test_a_full_disk_stops_no_worker(start_registry, small_disk) -> None:
    """Workers kept their metrics in memory-mapped files in the data folder: once that disk was
    full, a worker writing a series it had not written before (a new route, a new status)
    touched a page the file system could not give it and was killed by SIGBUS, and so was
    every worker respawned after it, until granian gave up on the crash loop and the server
    was gone. The metrics now live in memory; a full disk answers 507 and stops nothing."""
    server = start_registry("--workers", "2", data_dir=small_disk / "data")
    filler = fill(small_disk)
    blob = os.urandom(64 * 1024)
    for _ in range(3):
        # Each round on new connections, so both workers take some; new series every time.
        for i in range(12):
            with httpx.Client(base_url=server.url, timeout=60) as c:
                repo = unique_repo()
                c.get(f"/v2/{repo}/manifests/t{i}")
                c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob)
                c.get("/v2/_catalog", params={"n": i + 1})
                c.delete(f"/v2/{repo}/blobs/sha256:{i:064d}")
                c.get(f"/v2/{repo}/tags/list")
        time.sleep(1.5)  # the workers hand what they gathered to their metrics files each second
    assert "Unexpected exit" not in server.log(), server.log()
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.get("/v2/").status_code == 200
        refused = c.post(
            f"/v2/{unique_repo()}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob
        )
        assert refused.status_code == 507, refused.text
        filler.unlink()
        assert push_blob(c, unique_repo(), blob) == sha256(blob)
