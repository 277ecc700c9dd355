"""Turns for SQLite writers, handed over through `flock` on a file beside the database.

SQLite's own busy handler polls with growing sleeps, so under a few concurrent writers most of
a write's time went into sleeping after the lock was already free (py-spy: small-image pushes
waited in BEGIN, token-checked pulls in the counter update). Writers that queue on `flock`
get the turn the moment it is released. SQLite's locking still guards the file itself.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from dockyard.core import file_lock


class WriterTurns:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()

    def _fd(self) -> int:
        # One open file per thread: flock excludes open files, so threads need their own.
        fd = getattr(self._local, "fd", None)
        if fd is None:
            fd = self._local.fd = file_lock.open_lock_file(self.path)
        return fd

    @contextlib.contextmanager
    def turn(self, *, wait: bool = True) -> Iterator[bool]:
        """Hold the turn for the block; without `wait`, yield False at once if it is taken."""
        fd = self._fd()
        if wait:
            file_lock.lock(fd)
        elif not file_lock.try_lock(fd):
            yield False
            return
        try:
            yield True
        finally:
            file_lock.unlock(fd)
