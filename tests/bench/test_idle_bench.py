"""`python -m bench --only idle` in its tiniest form: on every server, the memory the idle
connections cost, the GETs' p99 with them and without, and every idle connection still open
when the timed run ended. Timings are never asserted: this machine is not the benchmark's."""

from __future__ import annotations

from pathlib import Path

from tests.bench.runner import check_every_round, finite, run_bench, tiny_wrk_run

SIDES = ("dockyard", "distribution", "distribution_v3")


def test_idle_benchmark_holds_the_connections_on_every_server(tmp_path: Path) -> None:
    args = [*tiny_wrk_run("idle"), "--idle-connections", "60"]
    results, printed = run_bench(tmp_path, args, ("wrk", "docker-registry"), timeout=300)
    check_every_round(results, ("idle_get_rps", "idle_get_p99_ms", "idle_p99_ratio"), sides=SIDES)
    for side in SIDES:
        # every idle connection was answered and still open after the GETs
        assert results["benchmarks"]["idle_kept_share"][side]["values"] == [1.0, 1.0], side
        memory = results["benchmarks"]["idle_memory_mib"][side]["values"]
        assert len(memory) == 2 and all(finite(v) for v in memory), side
    assert results["benchmarks"]["idle_memory_mib"]["target"] == "<= 64 MiB"
    assert results["benchmarks"]["idle_p99_ratio"]["target"] == "<= 1.2"
    info = results["info"]["idle"]
    assert info["idle_connections"] == 60
    for side in SIDES:
        assert len(info["p99_without_ms"][side]) == 2, side
    assert "memory of the idle connections" in printed
