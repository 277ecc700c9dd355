"""`python -m bench --only events` in its tiniest form: both servers yield the on/off ratios,
and Dockyard's "on" servers really delivered events to the benchmark's receiver (set-up refuses
to time otherwise; the rounds' pulls arrive too). Timings are never asserted here."""

from __future__ import annotations

from pathlib import Path

from bench.suite import EventsGet

from tests.bench.runner import check_every_round, check_figures, run_bench, tiny_wrk_run

TINY = tiny_wrk_run("events")


def test_the_events_benchmark_yields_ratios_for_both_servers(tmp_path: Path) -> None:
    results, printed = run_bench(tmp_path, TINY, ("docker-registry", "wrk"))
    check_every_round(results, ("events_get_rps", "events_get_ratio", "events_get_ratio_no_pulls"))
    assert results["benchmarks"]["events_get_ratio"]["target"] == "dockyard >= 0.9"
    received = results["info"]["events"]["events_received"]["dockyard"]
    assert len(received) == 2 and all(n > 0 for n in received), received
    assert "pull events on / off" in printed
    check_figures(results, [m.key for m in EventsGet.metrics])
