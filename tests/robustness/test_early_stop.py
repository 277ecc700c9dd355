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
from pathlib import Path

from tests.support.server import free_port, serve_command

STARTS = 6


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def test_a_stop_asked_while_workers_start_ends_every_worker_gracefully(tmp_path: Path) -> None:
    for start in range(STARTS):
        log_path = tmp_path / f"server-{start}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                serve_command(f"127.0.0.1:{free_port()}", tmp_path / "data", "--workers", "2"),
                stdout=log,
                stderr=subprocess.STDOUT,
                # Short, so that a worker that missed the stop is killed soon.
                env={**os.environ, "DOCKYARD_SHUTDOWN_TIMEOUT_SECONDS": "5"},
                start_new_session=True,
            )
        try:
            # The moment granian has forked both workers: neither serves yet.
            deadline = time.monotonic() + 60
            while len(_children(proc.pid)) < 2 and proc.poll() is None:
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.002)
            os.killpg(proc.pid, signal.SIGTERM)
            status = proc.wait(60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        text = log_path.read_text(errors="replace")
        assert "refused to gracefully stop" not in text, (start, text)
        assert status == 0, (start, status, text)
