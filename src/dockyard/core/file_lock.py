"""`flock` on a file, the lock every worker process of one host shares.

The kernel lets go of it when the holding process dies, so a crashed worker never leaves a lock
behind. Each user names its lock for what it protects (the content lock, a download's leader,
an upload being written); this module only takes and releases it, the same way everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from pathlib import Path


def open_lock_file(path: Path | str) -> int:
    """A descriptor to lock, creating the file (readable by this user only) when missing."""
    return os.open(path, os.O_CREAT | os.O_RDWR, 0o600)


def try_lock(fd: int, *, shared: bool = False) -> bool:
    """Take the lock without waiting; False when another open file holds it."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock(fd: int, *, shared: bool = False) -> None:
    """Take the lock, waiting for it in this thread."""
    fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)


# A waiter looks again this soon, then twice as late each time up to POLL_MAX.
POLL_FIRST = 0.001
POLL_MAX = 0.01


async def lock_async(fd: int, *, shared: bool = False) -> None:
    """Take the lock, looking again after short sleeps, never blocking the event loop.

    Not a thread blocked in `flock` per waiter: a dozen requests waiting for a lock that this
    same process holds filled the default executor, and the holder, which needs a thread of
    it to finish its work (a sweep removing bytes), could then never let go (a hang seen with
    eight concurrent manifest DELETEs against two collecting workers)."""
    delay = POLL_FIRST
    while not try_lock(fd, shared=shared):
        await asyncio.sleep(delay)
        delay = min(POLL_MAX, delay * 2)


def unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)


def release(fd: int) -> None:
    """Let go of the lock and of the descriptor."""
    unlock(fd)
    os.close(fd)


def is_free(path: Path | str) -> bool:
    """Whether nobody holds the lock of `path` right now (it is taken and let go at once)."""
    fd = open_lock_file(path)
    try:
        if not try_lock(fd):
            return False
        unlock(fd)
        return True
    finally:
        os.close(fd)


@contextlib.asynccontextmanager
async def held(
    path: Path | str, *, shared: bool = False, doorbell: Path | str | None = None
) -> AsyncIterator[None]:
    """The lock of `path` for the block, waited for without blocking the event loop.

    With a `doorbell` file, a caller that has to wait holds that file's lock shared while it
    does, so the holder can tell (`is_waited_for`) whether anyone waits: a holder that takes
    the lock turn after turn need not leave gaps between its turns when nobody does."""
    fd = open_lock_file(path)
    try:
        if not try_lock(fd, shared=shared):
            if doorbell is None:
                await lock_async(fd, shared=shared)
            else:
                bell = open_lock_file(doorbell)
                try:
                    # Shared with every other waiter; only `is_waited_for`'s momentary look
                    # takes it exclusively.
                    await lock_async(bell, shared=True)
                    await lock_async(fd, shared=shared)
                finally:
                    os.close(bell)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def is_waited_for(doorbell: Path | str) -> bool:
    """Whether some caller of `held(..., doorbell=doorbell)` is waiting right now."""
    return not is_free(doorbell)
