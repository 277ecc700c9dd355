"""A lock between publishing content and sweeping it away, shared by every worker process
(and, with PostgreSQL metadata, every replica: `dockyard.metadata.advisory_lock`).

Publishing (bytes made visible, then their records written) takes it shared; a sweep (bytes
moved out of sight, then their records dropped) takes it exclusively. Without it, a push of
content that a sweep is removing at that moment could end with records pointing at bytes that
are gone. Sweeps are rare, so publishers practically never wait.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from dockyard.core.file_lock import held, is_waited_for


class ContentLock(Protocol):
    def publishing(self) -> contextlib.AbstractAsyncContextManager[None]: ...

    def sweeping(self) -> contextlib.AbstractAsyncContextManager[None]: ...

    async def contended(self) -> bool:
        """Whether a publisher (or another sweeper) waits for the lock right now: a sweeper
        between two of its batches lets go for a moment only then."""
        ...

    def collecting(self) -> contextlib.AbstractAsyncContextManager[None]:
        """The collector's turn: serving collectors (one per worker, and per replica) review
        the queue one at a time, so pacing one paces them all."""
        ...


class FileContentLock:
    """One node's lock: `flock` on a file in the data folder (and two beside it: the waiters'
    doorbell and the collector's turn)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.doorbell = path.with_name(path.name + ".waiting")
        self.turn = path.with_name(path.name + ".collector")
        path.parent.mkdir(parents=True, exist_ok=True)

    def publishing(self) -> contextlib.AbstractAsyncContextManager[None]:
        return held(self.path, shared=True, doorbell=self.doorbell)

    def sweeping(self) -> contextlib.AbstractAsyncContextManager[None]:
        return held(self.path, doorbell=self.doorbell)

    async def contended(self) -> bool:
        return is_waited_for(self.doorbell)

    def collecting(self) -> contextlib.AbstractAsyncContextManager[None]:
        return held(self.turn)


class NoLock:
    """For a store used by one task alone (tests of a single service)."""

    def publishing(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _nothing()

    def sweeping(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _nothing()

    async def contended(self) -> bool:
        return False

    def collecting(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _nothing()


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield
