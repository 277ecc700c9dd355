"""The write-ahead log's sync, taken outside SQLite's write lock and shared by every commit
that came before it.

With `synchronous=FULL`, SQLite syncs the WAL inside COMMIT, while it holds the database's one
write lock: every other writer, of this process or another, waited for that disk flush, even
one with nothing to make durable (an upload's record). Writers now commit with
`synchronous=NORMAL` (the frames are written, not synced) and a durable write is acknowledged
only after `WalSync` has synced the WAL file since its commit. Nothing acknowledged is lost to
a power cut: SQLite's recovery replays the WAL's frames in order up to the first that is not
whole, so once the file is synced every commit written before the sync survives, and a commit
whose frames were not synced yet was not acknowledged. Checkpoints still sync the WAL before
they copy it into the database, and the database before the WAL is started again (as
`synchronous=NORMAL` does). A sync covers every commit written before it started, so commits
that arrive while one runs share the next: one sync per round, however many commits.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Executor

# Told whether the sync failed (None: every commit it covers is durable).
Durable = Callable[[BaseException | None], None]


def sync_file(path: str) -> None:
    """`fdatasync` on a fresh descriptor: syncs whatever any connection wrote to the file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


class WalSync:
    """`after_commit(then)` right after a commit returned: `then` is called (in a worker
    thread) once a sync that started after that commit has finished. `syncs` counts them."""

    def __init__(self, wal_path: str, executor: Executor) -> None:
        self.wal_path = wal_path
        self.executor = executor
        self.syncs = 0
        self._lock = threading.Lock()
        self._waiting: list[Durable] = []
        self._syncing = False

    def after_commit(self, then: Durable) -> None:
        with self._lock:
            self._waiting.append(then)
            start = not self._syncing
            self._syncing = True
        if start:
            try:
                self.executor.submit(self._run)
            except RuntimeError:  # the executor is shut down: sync here rather than never
                self._run()

    def _run(self) -> None:
        while True:
            with self._lock:
                covered, self._waiting = self._waiting, []
                if not covered:
                    self._syncing = False
                    return
            error: BaseException | None = None
            try:
                sync_file(self.wal_path)
                self.syncs += 1
            except BaseException as exc:
                error = exc
            for then in covered:
                then(error)
