"""Handing memory freed after big transfers back to the system (glibc's malloc, and the
jemalloc inside the HTTP server).

Blob transfers go through buffers of about a megabyte; glibc keeps what they freed in its
arenas, one per thread that allocated, so a burst of sixteen concurrent uploads left each
worker some 25 MiB larger for good. Fewer arenas and a trim after each big transfer keep a
worker near its idle size.

granian receives the bodies in buffers of its own jemalloc, which returns freed pages to the
system only as later allocations pass by: a worker left idle after a burst of uploads held
them for good (about 12 MiB a worker after sixteen concurrent uploads). `release_at_once`
tells it to return them as they are freed.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import time

BIG_TRANSFER = 8 * 1024 * 1024  # bodies at least this large are followed by a trim
_M_ARENA_MAX = -8
_TRIM_INTERVAL = 1.0  # seconds: a trim walks every arena, so not after every transfer


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = (ctypes.c_size_t,)
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


_libc = _glibc()

# The environment variable granian's jemalloc (tikv-jemallocator's prefixed build) reads its
# options from, once, when the library first allocates.
JEMALLOC_CONF_ENV = "_RJEM_MALLOC_CONF"
RELEASE_AT_ONCE = "dirty_decay_ms:0,muzzy_decay_ms:0"

_last_trim = 0.0
_pending = False


def limit_arenas(count: int = 2) -> None:
    """Before threads start (the serving process calls it before forking its workers)."""
    if _libc is not None:
        _libc.mallopt(_M_ARENA_MAX, count)


def release_at_once() -> None:
    """Before the HTTP server's library is loaded (it cannot change afterwards): its freed
    pages go back to the system at once. Options an operator set in the environment win."""
    os.environ.setdefault(JEMALLOC_CONF_ENV, RELEASE_AT_ONCE)


def trim_soon() -> None:
    """After a big transfer, on the event loop: return wholly free pages to the system a
    moment later (once the server has written its last buffers), at most once a second, and
    always once after the last transfer of a burst."""
    global _pending
    if _libc is None or _pending:
        return
    _pending = True
    delay = max(0.05, _last_trim + _TRIM_INTERVAL - time.monotonic())
    asyncio.get_running_loop().call_later(delay, _trim)


def _trim() -> None:
    global _pending, _last_trim
    _pending = False
    _last_trim = time.monotonic()
    if _libc is not None:
        _libc.malloc_trim(0)
