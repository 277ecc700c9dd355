"""`python -m bench --only startup` in its tiniest form: a start-to-ready figure for each server
and variant, the 0.3 s target in the table, and no server it started left running. Timings are
never asserted: this machine is not the benchmark's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bench.servers import Dockyard
from bench.suite import Startup

from tests.bench.runner import check_figures, finite, run_bench

TINY = ["--only", "startup", "--rounds", "1", "--startup-repeats", "1", "--keep"]
# The runner starts every server in one run (issue 21): Dockyard and both Distributions.
SERVERS = ("dockyard", "distribution", "distribution_v3")


def _commands_naming(folder: Path) -> list[str]:
    """Command lines of live processes that name something under `folder`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(folder) in command:
            found.append(command)
    return found


def test_startup_benchmark_times_every_server_and_stops_every_start(tmp_path: Path) -> None:
    results, printed = run_bench(tmp_path, TINY, ("docker-registry",), timeout=300)
    # --keep: the run's folder stays, to look at what the starts left (removed below).
    data = Path(results["servers"]["dockyard"]["command"].split("--data-dir ")[1].split()[0])
    run_folder = data.parent.parent
    try:
        for metric in Startup.metrics:
            entry = results["benchmarks"][metric.key]
            for side in SERVERS:
                median = entry[side]["median"]
                assert finite(median) and median > 0, (metric.key, side)
            assert entry["target"] == "<= 0.3 s"
            assert entry["target_met"] in (True, False)
        check_figures(results, [m.key for m in Startup.metrics])
        assert "start to ready" in printed
        # Each variant's folder was made by its untimed start, on both servers.
        made = sorted(p.name for p in run_folder.glob("startup-*"))
        assert len(made) == len(SERVERS) * len(Startup.variants), made
        assert (run_folder / "startup-dockyard-startup_s" / "data" / "metadata.db").is_file()
        assert _commands_naming(run_folder) == []
    finally:
        shutil.rmtree(run_folder, ignore_errors=True)


def test_dockyard_runs_from_bytecode_even_from_a_shell_that_writes_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An installed Dockyard starts from the bytecode pip wrote; a development shell's
    # PYTHONDONTWRITEBYTECODE would have every benchmarked start compile the checkout again.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    server = Dockyard("dockyard", "Dockyard", tmp_path, extra_env={"DOCKYARD_UI": "false"})
    env = server.env()
    assert env["DOCKYARD_UI"] == "false"
    probe = [sys.executable, "-c", "import sys; print(sys.dont_write_bytecode)"]
    result = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
