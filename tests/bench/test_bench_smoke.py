"""The benchmark runner end to end, in its quickest form: both servers, tiny sizes, one round.

Only the shape of the results is checked (every benchmark has a number for both servers and a
ratio); timings are never asserted here, the machine running the tests is not the benchmark's.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bench.suite import BENCHMARKS, PEAK_PSS, PEAK_RSS

from tests.bench.runner import run_bench

# Every benchmark runs inside the runner's time limit; beside other tests' servers (pytest-xdist)
# it ran out of it, so it runs with the machine to itself.
pytestmark = pytest.mark.alone

# The garbage-collection benchmark starts servers of its own, Distribution v3 among them, and
# has its own test (test_gc_bench.py); so does the repository page (test_page_bench.py), which
# starts a Dockyard with accounts of its own.
SMOKED = [b for b in BENCHMARKS if b.name not in ("gc", "page")]

TINY = [
    "--quick",
    "--rounds",
    "1",
    "--blob-mib",
    "2",
    "--chunk-mib",
    "1",
    "--pull-mib",
    "2",
    "--concurrent",
    "4",
    "--concurrent-mib",
    "1",
    "--wrk-seconds",
    "1",
    "--wrk-warmup",
    "0",
    "--connections",
    "8",
    "--images",
    "8",
    "--image-workers",
    "2",
    "--tags",
    "120",
    "--repos",
    "25",
    "--page",
    "50",
    "--list-iterations",
    "1",
    "--big-upload-mib",
    "4",
    "--setup-workers",
    "4",
    "--only",
    ",".join(b.name for b in SMOKED),
]


def test_every_benchmark_yields_numbers_for_both_servers(tmp_path: Path) -> None:
    results, printed = run_bench(
        tmp_path, TINY, ("docker-registry", "wrk", "hey", "curl"), timeout=120
    )
    assert results["machine"]["nproc"] >= 1
    keys = [m.key for b in SMOKED for m in b.metrics] + [PEAK_RSS.key, PEAK_PSS.key]
    assert sorted(results["benchmarks"]) == sorted(keys)
    for key in keys:
        entry = results["benchmarks"][key]
        assert entry["better"] in ("higher", "lower"), key
        for side in ("dockyard", "distribution"):
            median = entry[side]["median"]
            assert isinstance(median, int | float) and math.isfinite(median), (key, side)
            assert entry[side]["values"], (key, side)
        if entry["distribution"]["median"] != 0:  # a ratio to zero (memory growth) is null
            assert isinstance(entry["ratio"], int | float), key
    assert "ratio D/Dist" in printed  # the table was printed
    for server in results["servers"].values():
        assert server["version"]
        assert not Path(f"/proc/{server['pid']}").exists(), "a server was left running"
