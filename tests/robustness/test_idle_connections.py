"""Idle keep-alive connections (clients' pools between pulls) do not keep other clients out.

granian accepts at most `backpressure` connections per worker (by default 1,024 shared among the
workers) and a worker cannot hold more connections than it may open files; past either, a new
client waited unanswered in the listen queue."""

from __future__ import annotations

import resource
import shutil
import socket
import time
from pathlib import Path

import httpx

from tests.support.server import RunningRegistry, free_port

REQUEST = b"GET /v2/ HTTP/1.1\r\nHost: registry\r\n\r\n"


def _answer(sock: socket.socket) -> bytes:
    """One whole answer to a GET on a keep-alive connection (headers and Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before answering"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the body"
        body += chunk
    return head


def _idle_connection(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(REQUEST)
    assert _answer(sock).startswith(b"HTTP/1.1 200")
    return sock


def _still_open(sock: socket.socket) -> bool:
    try:
        sock.settimeout(0)
        return sock.recv(1) != b""
    except BlockingIOError:
        return True  # nothing to read: open and quiet
    except OSError:
        return False


def _low_open_files(soft: int) -> tuple[str, ...]:
    """Start the server under the soft open-file limit `soft` (a server started by systemd or a
    login shell gets 1,024). Through `prlimit`, for the server alone: lowering this test
    process's own limit failed once in CI, its xdist worker already holding more descriptors
    than that from earlier tests."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    limit = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    return (shutil.which("prlimit") or "prlimit", f"--nofile={soft}:{limit}", "--")


def _check_others_served(server: RunningRegistry, idle: int) -> None:
    held: list[socket.socket] = []
    try:
        for _ in range(idle):
            held.append(_idle_connection(server.port))
        # New clients, each on a connection of its own, are answered at once.
        for _ in range(20):
            with httpx.Client(timeout=5) as client:
                assert client.get(server.url + "/v2/").status_code == 200
        # ... and an idle one is served again when it speaks.
        held[0].settimeout(10)
        held[0].sendall(REQUEST)
        assert _answer(held[0]).startswith(b"HTTP/1.1 200")
        assert sum(_still_open(sock) for sock in held) == idle
    finally:
        for sock in held:
            sock.close()


def test_500_idle_connections_on_a_low_open_file_limit_do_not_keep_others_out(
    tmp_path: Path,
) -> None:
    # The cap on connections per worker follows the open-file limit: the server raises a
    # low soft limit to the hard one first, or the cap would be the low one's.
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        log_dir=tmp_path,
        args=("--workers", "1"),
        env={"DOCKYARD_HEADER_TIMEOUT_SECONDS": "120"},
        launcher=_low_open_files(256),
    )
    server.start()
    try:
        _check_others_served(server, 500)
    finally:
        server.stop()


def test_more_idle_connections_than_granian_accepts_by_default(tmp_path: Path) -> None:
    # Two workers: by default granian let each hold 512 connections.
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        log_dir=tmp_path,
        args=("--workers", "2"),
        env={"DOCKYARD_HEADER_TIMEOUT_SECONDS": "120"},
    ).start()
    try:
        started = time.monotonic()
        _check_others_served(server, 1100)
        assert time.monotonic() - started < 120  # all within the header timeout
    finally:
        server.stop()
