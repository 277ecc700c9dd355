"""`python -m bench --only signed` in its tiniest form: both servers yield a protected-GET rate
and a cost, and Dockyard's run really had the policy in force (the benchmark refuses to time a
repository whose unsigned image is served). Timings are never asserted here."""

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
    "signed",
]


def test_the_signed_benchmark_yields_a_cost_for_both_servers(tmp_path: Path) -> None:
    results, printed = run_bench(tmp_path, TINY, ("docker-registry", "wrk"))
    for key in ("signed_get_rps", "signed_get_cost"):
        entry = results["benchmarks"][key]
        for side in ("dockyard", "distribution"):
            values = entry[side]["values"]
            assert len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values), key
    assert results["benchmarks"]["signed_get_cost"]["target"] == "dockyard <= 1.2"
    assert "signed GET cost" in printed
