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
