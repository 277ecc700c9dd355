"""The startup benchmark's starts (`bench.startup`) stop on their SIGTERM well within the wait
of its stopper (15 s, then SIGKILL).

A Dockyard stopped within a moment of its first answer (which is what each timed start is)
used to have a worker whose shutdown did not finish until the server's shutdown timeout (30 s
by default) killed it: the stopper waited out its 15 s at most starts. That hang is fixed
(`dockyard.cli.early_stop`); the starts still run with a shutdown timeout of 1 s, as the
timed part, start to ready, does not depend on it.
"""

from __future__ import annotations

from pathlib import Path

from bench.servers import Dockyard

from bench import startup

STARTS = 3


def test_the_startup_benchmarks_starts_stop_within_the_stoppers_wait(tmp_path: Path) -> None:
    runner = Dockyard("dockyard", "Dockyard", tmp_path / "runner", extra_env={"A": "b"})
    twin = startup.twin(runner, tmp_path / "twin")
    assert isinstance(twin, Dockyard)
    env = twin.env()
    assert env["A"] == "b"  # the runner's settings are kept
    timeout = float(env["DOCKYARD_SHUTDOWN_TIMEOUT_SECONDS"])
    # what the server waits for a worker, then granian's kill, well inside the stopper's wait
    assert timeout * 3 <= startup.STOP_WAIT_SECONDS
    codes = []
    for _ in range(STARTS):
        startup.seconds_to_ready(twin)
        assert twin.proc is not None
        codes.append(twin.proc.returncode)
    assert codes == [0] * STARTS, (codes, twin.log_tail())  # not -9: none was killed
