"""The memory sampler reads RSS often and PSS seldom: reading PSS walks every mapping of the
server's processes while they serve, and ten times a second it slowed the server it was
measuring (bench/README.md)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from bench.servers import PeakSampler

from bench import servers


class Child:
    """Just enough of a `Server` for the sampler: a key and a process."""

    key = "child"

    def __init__(self, pid: int) -> None:
        self.pid = pid


def test_pss_is_read_once_a_second_and_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    reads: list[float] = []
    real = servers.pss_bytes

    def counted(pids: list[int]) -> int:
        reads.append(time.monotonic())
        return real(pids)

    monkeypatch.setattr(servers, "pss_bytes", counted)
    try:
        sampler = PeakSampler([Child(proc.pid)], interval=0.01, pss_interval=0.5)  # type: ignore[list-item]
        with sampler:
            time.sleep(0.3)
            sampler.phase = "second"
            time.sleep(1.0)
        # RSS at every tick, PSS at the first tick, at the new phase, each 0.5 s and at the end
        assert 3 <= len(reads) <= 6, reads
        assert sampler.peak["child"] > 0 and sampler.peak_pss["child"] > 0
        assert sampler.by_phase["second"]["child"]["pss"] > 0
    finally:
        proc.kill()
        proc.wait()
