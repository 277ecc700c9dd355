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

from dockyard.core.file_lock import held


class ContentLock(Protocol):
    def publishing(self) -> contextlib.AbstractAsyncContextManager[None]: ...

    def sweeping(self) -> contextlib.AbstractAsyncContextManager[None]: ...


class FileContentLock:
    """One node's lock: `flock` on a file in the data folder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def publishing(self) -> contextlib.AbstractAsyncContextManager[None]:
        return held(self.path, shared=True)

    def sweeping(self) -> contextlib.AbstractAsyncContextManager[None]:
        return held(self.path)


class NoLock:
    """For a store used by one task alone (tests of a single service)."""

    def publishing(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _nothing()

    def sweeping(self) -> contextlib.AbstractAsyncContextManager[None]:
        return _nothing()


@contextlib.asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield
