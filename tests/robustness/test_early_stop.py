"""A stop asked while the workers are still starting is obeyed once they serve.

`systemctl stop` right after a start sends SIGTERM to the whole control group, workers
included, as `killpg` does here. A worker that got it before serving (importing, opening its
stores) used to miss it, and the serving process's own stop request too: it served on until
the serving process gave up on it after the shutdown timeout and killed it, a request in
progress cut off. Judged by the log (no worker killed) and the exit status, not by time."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.server import free_port, serve_command, wait_for_http

STARTS = 6


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def _is_running(pid: int) -> bool:
    """Neither gone nor a zombie (its parent reaps it when it notices)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _serve(tmp_path: Path, port: int, log_path: Path) -> subprocess.Popen:
    """`dockyard serve` with two workers in a process group of its own, its output in
    `log_path`; a short shutdown timeout, so that a worker that missed a stop is killed soon."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            serve_command(f"127.0.0.1:{port}", tmp_path / "data", "--workers", "2"),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DOCKYARD_SHUTDOWN_TIMEOUT_SECONDS": "5"},
            start_new_session=True,
        )


def _wait_until(done: Callable[[], bool], log_path: Path, step: float) -> None:
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(step)


def _kill_if_running(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def test_a_stop_asked_while_workers_start_ends_every_worker_gracefully(tmp_path: Path) -> None:
    for start in range(STARTS):
        log_path = tmp_path / f"server-{start}.log"
        proc = _serve(tmp_path, free_port(), log_path)
        try:
            # The moment granian has forked both workers: neither serves yet.
            _wait_until(
                lambda p=proc: len(_children(p.pid)) >= 2 or p.poll() is not None, log_path, 0.002
            )
            os.killpg(proc.pid, signal.SIGTERM)
            status = proc.wait(60)
        finally:
            _kill_if_running(proc)
        text = log_path.read_text(errors="replace")
        assert "refused to gracefully stop" not in text, (start, text)
        assert status == 0, (start, status, text)


def test_a_group_stop_that_reaches_a_worker_first_ends_the_server_with_success(
    tmp_path: Path,
) -> None:
    """`systemctl stop` signals every process of the service at once, and a worker with
    nothing to do can be gone before the serving process has run its own handler: that exit
    was taken for a crash, the server said "Unexpected exit from worker-1" and ended with
    status 1 (systemd then marks the service failed). The order is forced here: the worker's
    signal first, the serving process's a moment later."""
    log_path, port = tmp_path / "server.log", free_port()
    proc = _serve(tmp_path, port, log_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v2/", proc=proc)
        worker = int(_children(proc.pid)[0])
        os.kill(worker, signal.SIGTERM)
        _wait_until(lambda: not _is_running(worker), log_path, 0.01)
        time.sleep(0.2)  # the serving process has seen its worker go
        os.kill(proc.pid, signal.SIGTERM)
        status = proc.wait(60)
    finally:
        _kill_if_running(proc)
    text = log_path.read_text(errors="replace")
    assert "Unexpected exit" not in text, text
    assert status == 0, (status, text)


def _respawned(log: str) -> bool:
    _, found, after = log.partition("Unexpected exit")
    return bool(found) and "Spawning worker" in after


def test_a_worker_stopped_alone_is_still_replaced(tmp_path: Path) -> None:
    """The wait for a group stop does not hide a worker that ended while the server goes on:
    it is respawned and the server keeps answering."""
    log_path, port = tmp_path / "server.log", free_port()
    proc = _serve(tmp_path, port, log_path)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/v2/", proc=proc)
        before = set(_children(proc.pid))
        os.kill(int(sorted(before)[0]), signal.SIGTERM)
        _wait_until(lambda: _respawned(log_path.read_text()), log_path, 0.05)
        assert proc.poll() is None, log_path.read_text()
        _wait_until(lambda: bool(set(_children(proc.pid)) - before), log_path, 0.05)
        wait_for_http(f"http://127.0.0.1:{port}/v2/", proc=proc)
        assert proc.poll() is None
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
