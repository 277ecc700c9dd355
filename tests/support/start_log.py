"""Counts the servers a test run starts, for finding the ones started more often than needed.

Off by default. `pytest -p tests.support.start_log` writes one line per start (the kind of
server, the test that was running or setting up, and the seconds the start took) to the file
named by `DOCKYARD_START_LOG`, shared by every xdist process of the run (lines are appended
whole), and the run ends with a count by kind. Dockyard's stops are logged too (kind
`dockyard-stop`, not counted as starts): a stop that waits out its timeout is time lost.

    DOCKYARD_START_LOG=$PWD/starts.tsv pytest -p tests.support.start_log -n 3 --dist loadfile ...
    cut -f2 starts.tsv | sort | uniq -c
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.peers import Distribution
from tests.support.postgres import PostgresCluster
from tests.support.redis_server import RedisServer
from tests.support.seaweedfs import SeaweedS3
from tests.support.server import RunningRegistry

KINDS: dict[str, type] = {
    "dockyard": RunningRegistry,
    "seaweedfs": SeaweedS3,
    "postgresql": PostgresCluster,
    "redis": RedisServer,
    "distribution": Distribution,
}
COUNTS: Counter[str] = Counter()
_current = {"test": "(collection)"}


def _write(kind: str, seconds: float) -> None:
    COUNTS[kind] += 1
    path = os.environ.get("DOCKYARD_START_LOG")
    if not path:
        return
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    line = f"{worker}\t{kind}\t{seconds:.2f}\t{_current['test']}\n"
    with open(path, "a") as log:
        log.write(line)


def _counted(kind: str, start: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(start)
    def wrapper(self: object, *args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            return start(self, *args, **kwargs)
        finally:
            _write(kind, time.monotonic() - began)

    return wrapper


STOP = "dockyard-stop"


def pytest_configure(config: pytest.Config) -> None:
    for kind, cls in KINDS.items():
        cls.start = _counted(kind, cls.start)  # type: ignore[attr-defined]
    RunningRegistry.stop = _counted(STOP, RunningRegistry.stop)  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    _current["test"] = item.nodeid
    try:
        return (yield)
    finally:
        _current["test"] = "(between tests)"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The count of the whole run: under xdist only the log file has the workers' starts."""
    counts = COUNTS
    path = os.environ.get("DOCKYARD_START_LOG")
    if path and os.path.exists(path):
        with open(path) as log:
            counts = Counter(line.split("\t")[1] for line in log if line.strip())
    shown = ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()) if kind != STOP)
    terminalreporter.write_line(f"servers started: {shown or 'none'}")
