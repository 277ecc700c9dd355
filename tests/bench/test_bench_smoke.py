"""The benchmark runner end to end, in its quickest form: Dockyard, Distribution v3.1.1 and
2.8.2 (and the bare sink for the blob transfers), tiny sizes, one round.

Only the shape of the results is checked (every benchmark has a number for every server, the
ratios to each Distribution and to the faster one, the sink's share); timings are never
asserted here, the machine running the tests is not the benchmark's.
"""

from __future__ import annotations

from pathlib import Path

from bench.suite import BENCHMARKS, PEAK_MEMORY, PEAK_PSS, PEAK_RSS

from tests.bench.runner import check_figures, run_bench

# Not `alone`: nothing here is timed against a limit but the runner's own (below), and the
# other benchmark tests (test_page_bench.py, test_gc_bench.py, ...) run the same runner beside
# other tests' servers. When it ran alone (with every benchmark, then 180 s) it ran out of that
# limit beside them; with the long benchmarks in tests of their own it took 27 s alone at load
# 15, and its limit is the other runner tests' 300 s.

# The benchmarks with a test of their own are left to it: garbage collection and the repository
# page (test_gc_bench.py, test_page_bench.py, which start servers of their own), the idle
# connections (test_idle_bench.py, a few hundred connections even at --quick), and start-up,
# signed pulls, the metrics' and the events' cost (test_startup_bench.py, test_signed_bench.py,
# test_metrics_bench.py, test_events_bench.py), whose tests make the same checks of their figures
# as this one (`check_figures`). Their set-ups start servers of their own: run here as well,
# they took most of this test's time, every other test of the run waiting (`alone`).
OWN_TESTS = ("gc", "page", "idle", "startup", "signed", "metrics", "events")
SMOKED = [b for b in BENCHMARKS if b.name not in OWN_TESTS]

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
    "24",
    "--repos",
    "6",
    "--page",
    "10",
    "--list-iterations",
    "1",
    "--big-upload-mib",
    "4",
    "--setup-workers",
    "4",
    "--only",
    ",".join(b.name for b in SMOKED),
]


def test_every_benchmark_yields_numbers_for_every_server(tmp_path: Path) -> None:
    results, printed = run_bench(
        tmp_path, TINY, ("docker-registry", "registry-v3", "wrk", "ab", "curl"), timeout=300
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
    check_figures(results, keys, frozenset(on_sink))
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
