"""Tests marked `alone` get the machine to themselves while the suite runs under pytest-xdist.

A few tests measure or race against the clock at a scale where sharing two cores with other
tests changes what they see (the garbage-collection race, the benchmark runners). Under xdist
every worker takes a shared lock around each test it runs; an `alone` test takes it exclusively,
so it starts once the other workers have finished their current test and they start no other
until it is done. A turnstile lock in front gives the exclusive taker precedence: without it the
workers' overlapping shared holds could keep it waiting for the rest of the run.

The controller makes one lock folder per run and hands it to its workers, so two runs on the
same machine (two engineers, two worktrees) never wait for each other. Without xdist there is
one process and the locks are never contended.
"""

from __future__ import annotations

import fcntl
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

LOCK_DIR_KEY = "dockyard_machine_lock_dir"
_folder_key = pytest.StashKey[Path]()


def _lock_dir(config: pytest.Config) -> Path | None:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is None or LOCK_DIR_KEY not in workerinput:
        return None
    return Path(workerinput[LOCK_DIR_KEY])


@contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def machine_share(folder: Path, alone: bool) -> Iterator[None]:
    """Hold the run's machine lock: exclusively for an `alone` test, shared for any other."""
    turnstile = folder / "turnstile"
    machine = folder / "machine"
    if alone:
        with _flock(turnstile, fcntl.LOCK_EX), _flock(machine, fcntl.LOCK_EX):
            yield
        return
    with _flock(turnstile, fcntl.LOCK_EX):
        handle = machine.open("a")
        fcntl.flock(handle, fcntl.LOCK_SH)
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_folder_key, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(xdist, in the controller) Give each worker the run's lock folder, made for the first."""
    stash = node.config.stash
    if _folder_key not in stash:
        stash[_folder_key] = Path(tempfile.mkdtemp(prefix="dockyard-machine-lock-"))
    node.workerinput[LOCK_DIR_KEY] = str(stash[_folder_key])


# tryfirst: outside pytest-timeout's wrapper, so that waiting for the machine is not counted
# in a test's timeout.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    folder = _lock_dir(item.config)
    if folder is None:
        return (yield)
    with machine_share(folder, alone=item.get_closest_marker("alone") is not None):
        return (yield)
