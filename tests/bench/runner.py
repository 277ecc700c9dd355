"""Runs `python -m bench` the way the benchmark tests do: at a tiny size, in a subprocess, with
the peers it needs checked first; the tests then read its JSON results."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.peers import require

ROOT = Path(__file__).resolve().parents[2]


def run_bench(
    tmp_path: Path,
    args: list[str],
    tools: tuple[str, ...],
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> tuple[dict[str, Any], str]:
    """The results of `python -m bench ARGS` (which must succeed with no benchmark's error),
    and the table it printed. `env`: the subprocess's whole environment (default: ours)."""
    for tool in tools:
        require(tool)
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    results: dict[str, Any] = json.loads(out.read_text())
    assert results.get("errors", {}) == {}
    return results, result.stdout


def finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def tiny_wrk_run(only: str) -> list[str]:
    """The arguments of a benchmark built on wrk at its tiniest: two rounds of one second on
    four connections, no warm-up."""
    return [
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
        only,
    ]


def check_every_round(
    results: dict[str, Any],
    keys: tuple[str, ...],
    sides: tuple[str, ...] = ("dockyard", "distribution"),
) -> None:
    """Each of `keys` has a positive, finite value for both rounds of every server in `sides`."""
    for key in keys:
        entry = results["benchmarks"][key]
        for side in sides:
            values = entry[side]["values"]
            assert len(values) == 2 and all(finite(v) and v > 0 for v in values), (key, side)


SIDES = ("dockyard", "distribution_v3", "distribution")


def check_figures(
    results: dict[str, Any], keys: list[str], on_sink: frozenset[str] = frozenset()
) -> None:
    """Each of `keys` has the shape of a result for every server: a finite median with its
    values, the ratios to each Distribution and to the faster one (the anchor), and, for those
    `on_sink`, Dockyard's share of the bare sink (any other has no sink figure)."""
    for key in keys:
        entry = results["benchmarks"][key]
        assert entry["better"] in ("higher", "lower"), key
        for side in SIDES:
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
            # (no "sink" at all in a run without a transfer benchmark: no sink was started)
            assert not entry.get("sink", {}).get("values") and entry["of_sink"] is None, key
