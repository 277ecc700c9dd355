"""`python -m bench --only metrics` in its tiniest form: both servers yield a metrics-on rate
and an on/off ratio, and Dockyard's two servers really differ by the switch (the benchmark
checks that one serves /metrics and the other does not). Timings are never asserted here."""

from __future__ import annotations

from pathlib import Path

from bench.suite import MetricsCost

from tests.bench.runner import check_every_round, check_figures, run_bench, tiny_wrk_run

TINY = tiny_wrk_run("metrics")


def test_the_metrics_benchmark_yields_a_ratio_for_both_servers(tmp_path: Path) -> None:
    results, printed = run_bench(tmp_path, TINY, ("docker-registry", "wrk"))
    check_every_round(results, ("metrics_on_get_rps", "metrics_on_off_ratio"))
    assert results["benchmarks"]["metrics_on_off_ratio"]["target"] == "dockyard >= 0.95"
    assert "metrics on/off" in printed
    check_figures(results, [m.key for m in MetricsCost.metrics])
