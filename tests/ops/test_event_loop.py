"""Workers serve on uvloop (`dockyard serve` names it: granian's automatic choice would take
whichever loop happens to be installed)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx


def worker_pids(parent: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def test_every_worker_runs_uvloop(start_registry) -> None:
    server = start_registry("--workers", "2")
    assert httpx.get(f"{server.url}/v2/", timeout=30).status_code == 200
    workers = worker_pids(server.proc.pid)
    assert len(workers) >= 2, workers
    for pid in workers:
        maps = Path(f"/proc/{pid}/maps").read_text()
        assert "/uvloop/loop." in maps, f"worker {pid} has not loaded uvloop"
