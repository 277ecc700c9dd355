"""`python -m bench.inproc` in its tiniest form: each kind of request answered 200 (a push's
201 or 202) through the whole application and a finite CPU figure for each (never asserted
against a target)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_inproc_reports_a_figure_for_each_kind_of_request() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "bench.inproc", "--requests", "50", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) == {
        "manifest_get",
        "manifest_head",
        "blob_head",
        "blob_post",
        "blob_put",
        "manifest_put",
        "small_image",
    }
    assert all(math.isfinite(v) and v > 0 for v in figures.values()), figures


COMPARE = [sys.executable, "-m", "bench.inproc", "--requests", "30", "--compare", "--rounds", "1"]


def test_inproc_compares_the_hot_reads_with_starlettes_route() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run(
        [*COMPARE, "--json"],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(figures) == {"hot", "starlette"}
    for kinds in figures.values():
        assert {"manifest_get", "manifest_head", "blob_head"} <= set(kinds)
        assert all(math.isfinite(v) and v > 0 for v in kinds.values()), figures
