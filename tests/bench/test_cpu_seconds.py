"""The benchmarks' CPU clock of a process tree counts what its processes spend, and only that."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from bench.servers import cpu_seconds, tree_pids


def test_cpu_seconds_counts_a_busy_child_and_not_an_idle_one() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert busy.pid in tree_pids(os.getpid()) and idle.pid in tree_pids(os.getpid())
        before = cpu_seconds([busy.pid]), cpu_seconds([idle.pid])
        time.sleep(1.0)
        after = cpu_seconds([busy.pid]), cpu_seconds([idle.pid])
        assert after[0] - before[0] >= 0.1  # spinning, even on a loaded machine
        assert after[1] - before[1] <= 0.05
        assert cpu_seconds([busy.pid, idle.pid]) >= after[0]
        assert cpu_seconds([2**22 + 12345]) == 0.0  # a process that is not there
    finally:
        for process in (busy, idle):
            process.kill()
            process.wait()
