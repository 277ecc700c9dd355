"""`python -m bench --only signed` in its tiniest form: both servers yield a protected-GET rate
and a cost, and Dockyard's run really had the policy in force (the benchmark refuses to time a
repository whose unsigned image is served). Timings are never asserted here."""

from __future__ import annotations

from pathlib import Path

from bench.suite import SignedPull

from tests.bench.runner import check_every_round, check_figures, run_bench, tiny_wrk_run

TINY = tiny_wrk_run("signed")


def test_the_signed_benchmark_yields_a_cost_for_both_servers(tmp_path: Path) -> None:
    results, printed = run_bench(tmp_path, TINY, ("docker-registry", "wrk"))
    check_every_round(results, ("signed_get_rps", "signed_get_cost"))
    assert results["benchmarks"]["signed_get_cost"]["target"] == "dockyard <= 1.2"
    assert "signed GET cost" in printed
    check_figures(results, [m.key for m in SignedPull.metrics])
