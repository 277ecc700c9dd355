"""Handing memory freed after big transfers back to the system (glibc's malloc, and the
jemalloc inside the HTTP server).

Blob transfers go through buffers of about a megabyte; glibc keeps what they freed in its
arenas, one per thread that allocated, so a burst of sixteen concurrent uploads left each
worker some 25 MiB larger for good. Fewer arenas and a trim after each big transfer keep a
worker near its idle size.

granian copies every body piece, received or sent, into a buffer of its own jemalloc, freed on
another thread than the one that took it. Returned to the system as soon as freed, each of
those pages was faulted in and zeroed again by the next piece, the largest cost of a transfer
after the copies themselves (bench/README.md). So jemalloc keeps freed pages for reuse
(`reuse_then_release`), and a moment after the last big transfer the worker makes it give back
what has lain unused since (`give_back`): jemalloc returns pages only as later allocations
pass by (its background thread, which would do it on its own, does not survive granian's fork
of the workers), and an idle worker has none.
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
# Freed pages are kept this long for reuse. One arena for every thread: a piece is allocated on
# one thread and freed on another, and `give_back` can only make the arena of its own thread
# give pages back.
_DECAY_SECONDS = 1.0
REUSE_THEN_RELEASE = f"dirty_decay_ms:{int(_DECAY_SECONDS * 1000)},muzzy_decay_ms:0,narenas:1"
# jemalloc looks at the time and gives back what has decayed about once per thousand of its
# allocations and frees; `give_back` makes this many (each one allocation above the thread
# cache's sizes and its free, plus a few small ones), so that it happens several times over.
_NUDGES = 3000
_NUDGE_SIZE = 2000  # a vector of this many 24-byte entries: 47 KiB

_last_trim = 0.0
_pending = False
_give_back_at: asyncio.TimerHandle | None = None


def limit_arenas(count: int = 2) -> None:
    """Before threads start (the serving process calls it before forking its workers)."""
    if _libc is not None:
        _libc.mallopt(_M_ARENA_MAX, count)


def reuse_then_release() -> None:
    """Before the HTTP server's library is loaded (it cannot change afterwards): its freed
    pages are reused for a moment, then given back. Options an operator set in the environment
    win."""
    os.environ.setdefault(JEMALLOC_CONF_ENV, REUSE_THEN_RELEASE)


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
    global _pending, _last_trim, _give_back_at
    _pending = False
    _last_trim = time.monotonic()
    if _libc is not None:
        _libc.malloc_trim(0)
    # Once the last transfer's pages have lain unused for jemalloc's whole decay time.
    if _give_back_at is not None:
        _give_back_at.cancel()
    _give_back_at = asyncio.get_running_loop().call_later(_DECAY_SECONDS + 0.25, give_back)


def give_back() -> None:
    """Make granian's jemalloc give back the pages that have lain unused for its decay time:
    it does so only while allocating, so allocate and free through it for a moment (granian
    offers nothing else that reaches it). Without granian, or with one shaped otherwise,
    nothing is done (`tests/robustness/test_upload_burst_memory.py` then fails)."""
    global _give_back_at
    _give_back_at = None
    try:
        from granian._granian import MetricsAggregator
    except ImportError:
        return
    try:
        for _ in range(_NUDGES):
            MetricsAggregator(_NUDGE_SIZE)
    except TypeError:
        return
