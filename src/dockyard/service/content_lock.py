"""A lock between publishing content and sweeping it away, shared by every worker process
(and, with PostgreSQL metadata, every replica: `dockyard.metadata.advisory_lock`).

Publishing (bytes made visible, then their records written) takes it shared; a sweep (bytes
moved out of sight, then their records dropped) takes it exclusively. Without it, a push of
content that a sweep is removing at that moment could end with records pointing at bytes that
are gone. Sweeps are rare, so publishers practically never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol


class ContentLock(Protocol):
    def publishing(self) -> contextlib.AbstractAsyncContextManager[None]: ...

    def sweeping(self) -> contextlib.AbstractAsyncContextManager[None]: ...


class FileContentLock:
    """One node's lock: `flock` on a file in the data folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.asynccontextmanager
    async def _hold(self, mode: int) -> AsyncIterator[None]:
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                await asyncio.to_thread(fcntl.flock, fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def publishing(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._hold(fcntl.LOCK_SH)

    def sweeping(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self._hold(fcntl.LOCK_EX)


class NoLock(FileContentLock):
    """For a store used by one task alone (tests of a single service)."""

    def __init__(self) -> None:
        pass

    @contextlib.asynccontextmanager
    async def _hold(self, mode: int) -> AsyncIterator[None]:
        yield

