"""The benchmark runner end to end, in its quickest form: Dockyard, Distribution v3.1.1 and
2.8.2 (and the bare sink for the blob transfers), tiny sizes, one round.

Only the shape of the results is checked (every benchmark has a number for every server, the
ratios to each Distribution and to the faster one, the sink's share); timings are never
asserted here, the machine running the tests is not the benchmark's.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bench.suite import BENCHMARKS, PEAK_MEMORY, PEAK_PSS, PEAK_RSS

from tests.bench.runner import run_bench

# Every benchmark runs inside the runner's time limit; beside other tests' servers (pytest-xdist)
# it ran out of it, so it runs with the machine to itself.
pytestmark = pytest.mark.alone

# The garbage-collection benchmark starts servers of its own, Distribution v3 among them, and
# has its own test (test_gc_bench.py); so does the repository page (test_page_bench.py), which
# starts a Dockyard with accounts of its own, and the idle connections (test_idle_bench.py),
# which hold a few hundred connections even at --quick.
SMOKED = [b for b in BENCHMARKS if b.name not in ("gc", "page", "idle")]

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
    "--startup-repeats",
    "1",
    "--only",
    ",".join(b.name for b in SMOKED),
]


def test_every_benchmark_yields_numbers_for_every_server(tmp_path: Path) -> None:
    results, printed = run_bench(
        tmp_path, TINY, ("docker-registry", "registry-v3", "wrk", "hey", "curl"), timeout=180
    )
    assert results["machine"]["nproc"] >= 1
    assert sorted(results["servers"]) == ["distribution", "distribution_v3", "dockyard", "sink"]
    peaks = [PEAK_RSS.key, PEAK_PSS.key, PEAK_MEMORY.key]
    keys = [m.key for b in SMOKED for m in b.metrics] + peaks
    assert sorted(results["benchmarks"]) == sorted(keys)
    on_sink = {m.key for b in SMOKED if b.on_sink for m in b.metrics}
    assert on_sink == {
        "blob_push_monolithic_mibps",
        "blob_push_chunked_mibps",
        "blob_push_concurrent_mibps",
        "blob_pull_mibps",
    }
    for key in keys:
        entry = results["benchmarks"][key]
        assert entry["better"] in ("higher", "lower"), key
        for side in ("dockyard", "distribution_v3", "distribution"):
            median = entry[side]["median"]
            assert isinstance(median, int | float) and math.isfinite(median), (key, side)
            assert entry[side]["values"], (key, side)
        medians = {side: entry[side]["median"] for side in ("distribution_v3", "distribution")}
        if all(medians.values()):  # a ratio to zero (memory growth) is null
            assert isinstance(entry["ratio"], int | float), key
            assert isinstance(entry["ratio_v3"], int | float), key
            pick = max if entry["better"] == "higher" else min
            assert entry["anchor"] == pick(medians, key=lambda side: medians[side]), key
            faster = medians[entry["anchor"]]
            assert math.isclose(entry["ratio_anchor"], entry["dockyard"]["median"] / faster)
        if key in on_sink:
            assert entry["sink"]["values"], key
            assert math.isclose(
                entry["of_sink"], entry["dockyard"]["median"] / entry["sink"]["median"]
            )
            assert "90% of sink" in entry["target"] and entry["target_met"] is not None, key
        else:
            assert not entry["sink"]["values"] and entry["of_sink"] is None, key
    # p99 of every request benchmark is judged against the faster Distribution
    for key in ("manifest_get_p99_ms", "manifest_head_p99_ms", "blob_head_p99_ms"):
        assert results["benchmarks"][key]["target_met"] is not None, key
    memory = results["benchmarks"][PEAK_MEMORY.key]
    assert memory["dockyard"]["median"] == results["benchmarks"][PEAK_PSS.key]["dockyard"]["median"]
    for side in ("distribution_v3", "distribution"):
        assert memory[side]["median"] == results["benchmarks"][PEAK_RSS.key][side]["median"]
    assert "D/faster" in printed and "of sink" in printed  # the table was printed
    for server in results["servers"].values():
        assert server["version"]
        assert not Path(f"/proc/{server['pid']}").exists(), "a server was left running"
