"""The repository page benchmark end to end at a tiny size, one round: Dockyard with accounts
started by the benchmark (and stopped after it), its page timed anonymous and signed in, first
page and filtered, and the tag list of the same repository on both servers.

Timings are never asserted (this machine is not the benchmark's); the shape is: every page
figure for Dockyard, "no page" for Distribution, the tag list on both with a ratio, and the
100 ms target shown in the table.
"""

from __future__ import annotations

from pathlib import Path

from bench.suite import RepositoryPage

from tests.bench.runner import finite, run_bench

TINY = [
    "--only",
    "page",
    "--rounds",
    "1",
    "--tags",
    "120",
    "--page-indexes",
    "4",
    "--wrk-seconds",
    "1",
    "--wrk-warmup",
    "0",
    "--connections",
    "4",
    "--setup-workers",
    "4",
    # four connections leave little in flight: each of the seven views' pause is short
    "--page-settle-seconds",
    "0.1",
]


def test_page_benchmark_times_every_view_and_the_peer_tag_list(tmp_path: Path) -> None:
    results, printed = run_bench(tmp_path, TINY, ("docker-registry", "wrk", "ab", "curl"))
    bench = results["benchmarks"]

    for metric in RepositoryPage.metrics:
        entry = bench[metric.key]
        assert finite(entry["dockyard"]["median"]) and entry["dockyard"]["median"] > 0, metric.key
        if metric.key.startswith("page_tags_list"):
            assert finite(entry["distribution"]["median"]), metric.key
            assert finite(entry["ratio"]), metric.key
        else:
            # Distribution has no page: no figure, and the table says why.
            assert entry["distribution"]["median"] is None, metric.key
        if metric.key.endswith(("_median_ms", "_p99_ms")) and not metric.key.startswith(
            "page_tags_list"
        ):
            assert entry["target"] == "< 100 ms", metric.key
            assert entry["target_met"] in (True, False), metric.key
    assert "no page" in printed
    assert "< 100 ms" in printed

    assert results["config"]["page_settle_seconds"] == 0.1
    info = results["info"]["page"]
    # The filter matches some of the 116 plain tags (tag-00000 ... tag-00115).
    assert info["filter"]["dockyard"] == "tag-000"
    assert sorted(info["urls"]["dockyard"]) == sorted(
        ["page_tags_list", *(key for key, _, _, _ in RepositoryPage.views)]
    )
    assert info["urls"]["distribution"] == ["page_tags_list"]
    pids = [info["pids"]["dockyard"]] + [s["pid"] for s in results["servers"].values()]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), "a server was left running"
