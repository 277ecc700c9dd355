"""`python -m bench --only metrics` in its tiniest form: both servers yield a metrics-on rate
and an on/off ratio, and Dockyard's two servers really differ by the switch (the benchmark
checks that one serves /metrics and the other does not). Timings are never asserted here."""

from __future__ import annotations

import math
from pathlib import Path

from tests.bench.runner import run_bench

TINY = [
    "--quick",
    "--rounds",
    "2",
    "--wrk-seconds",
    "1",
    "--wrk-warmup",
    "0",
    "--connections",
    "4",
    "--only",
    "metrics",
]


def test_the_metrics_benchmark_yields_a_ratio_for_both_servers(tmp_path: Path) -> None:
    results, printed = run_bench(tmp_path, TINY, ("docker-registry", "wrk"))
    for key in ("metrics_on_get_rps", "metrics_on_off_ratio"):
        entry = results["benchmarks"][key]
        for side in ("dockyard", "distribution"):
            values = entry[side]["values"]
            assert len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values), key
    assert results["benchmarks"]["metrics_on_off_ratio"]["target"] == "dockyard >= 0.95"
    assert "metrics on/off" in printed
