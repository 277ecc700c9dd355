"""The garbage-collection benchmark end to end at a tiny size: Dockyard, Distribution 2.8.2 and
v3.1.1 each set up, collected and checked (every deleted blob gone from the disk, every
surviving one there), one round.

Timings are never asserted (this machine is not the benchmark's); the shape is: a figure for
every collection, a manifest GET figure during Dockyard's collection, and Distribution shown as
not serving during its own.
"""

from __future__ import annotations

from pathlib import Path

from bench.suite import GarbageCollection

from tests.bench.runner import finite, run_bench

TINY = [
    "--only",
    "gc",
    "--rounds",
    "1",
    "--gc-images",
    "12",
    "--gc-wave-images",
    "60",
    "--gc-timeout",
    "120",
    "--wrk-seconds",
    "1",
    "--wrk-warmup",
    "0",
    "--connections",
    "4",
    "--setup-workers",
    "4",
]


def test_gc_benchmark_collects_on_every_server_and_reports_each_figure(tmp_path: Path) -> None:
    results, printed = run_bench(
        tmp_path, TINY, ("docker-registry", "registry-v3", "wrk", "ab", "curl")
    )
    bench = results["benchmarks"]

    for metric in GarbageCollection.metrics:
        assert finite(bench[metric.key]["dockyard"]["median"]), metric.key
    for key in ("gc_reclaim_online_s", "gc_reclaim_now_s", "gc_reclaim_online_v3_s"):
        assert bench[key]["dockyard"]["median"] > 0, key
        assert bench[key]["distribution"]["median"] > 0, key
        assert finite(bench[key]["ratio"]), key
    assert bench["gc_get_idle_rps"]["distribution"]["median"] > 0
    # Distribution serves nothing while it collects: 0, no latency, and the table says why.
    assert bench["gc_get_during_rps"]["distribution"]["median"] == 0
    assert bench["gc_get_during_p99_ms"]["distribution"]["median"] is None
    assert bench["gc_get_during_rps"]["dockyard"]["median"] > 0
    assert "not serving" in printed

    rounds = results["info"]["gc"]["rounds"]
    assert len(rounds["distribution"]) == 2
    assert any("v3" in r["server"] for r in rounds["distribution"])
    for entry in rounds["distribution"] + rounds["dockyard"]:
        # 12 images, every other deleted: 6 x (config + 9 layers), and Distribution's
        # and Dockyard's stores both hold the manifests as blobs too
        assert entry["garbage_blobs"] == 6 * 11, entry
        assert entry["surviving_blobs"] == 6 * 11, entry
    (dockyard,) = rounds["dockyard"]
    assert dockyard["gc_now_report"]["blobs"] == 6 * 11
    assert dockyard["wave_blobs"] == 60 * 11
    pids = [s["pid"] for s in results["servers"].values()]
    pids += [pid for entry in rounds["distribution"] + rounds["dockyard"] for pid in entry["pids"]]
    # the runner's three (Dockyard, Distribution v3 and 2.8.2, idle here), Dockyard started
    # twice, both Distribution versions
    assert len(pids) == 3 + 2 + 2
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), "a server was left running"
