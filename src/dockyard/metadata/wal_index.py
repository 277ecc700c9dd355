"""The header of SQLite's wal-index, read from the `-shm` file's shared memory: a value that
moves with every commit, read without a statement or a lock.

In WAL mode every connection, of any process, shares the wal-index in `<database>-shm`. Its
header (48 bytes, kept twice, at offsets 0 and 48; SQLite's "WAL-mode File Format" document)
holds a counter of transactions (`iChange`), the last valid frame (`mxFrame`), the WAL's salts
and a checksum. A commit raises `iChange` and writes the header, the second copy first, before
its writer lets go of the write lock; so once a commit is acknowledged, the next reader sees a
header it has not seen before, and the header comes back to an earlier value only if 2^32
commits pass and the rest happens to match. That is the whole test of `PRAGMA data_version`
too: a connection's version moves when, beginning a read, it finds the header changed since
it last looked. The statement costs that begin (a read lock on the wal-index: two `fcntl`
calls) and the statement itself; this costs two copies of 48 bytes.

A header read half-written (a commit writing it meanwhile) is told by its two copies: the
reader takes the first copy, then the second, while the writer writes the second, then the
first, so a torn first copy never equals the second. That ordering needs loads that the CPU
does not reorder, as on x86-64 (elsewhere `open_wal_index` declines). Nothing here is written.

The map comes with a connection of its own, open as long as the map: in WAL mode a connection
keeps the database and its `-shm` open, and SQLite truncates or deletes `-shm` only when no
other process holds its claim on it (a shared lock), so the mapped file is the live one and
never shrinks under it. That claim is a POSIX lock, and POSIX drops all of a process's locks
on a file when the process closes any descriptor of it: so the map is made from the
descriptor SQLite itself holds, with libc's `mmap` (Python's `mmap` duplicates the
descriptor and closes the duplicate with the map), and no descriptor of `-shm` is ever
opened or closed here.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import sqlite3

HEADER = 48  # bytes of one copy of the header (WalIndexHdr)
_IS_INIT = 12  # its `isInit` byte: 1 once a connection built the index
_ORDERED_LOADS = {"x86_64", "amd64", "i386", "i686"}
_MAPPED = 2 * HEADER

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value


class WalIndex:
    """The wal-index header of one database in WAL mode, mapped read-only from a descriptor
    this process already holds (`descriptor`, not taken over: never closed here), and the
    connection that keeps it the live one."""

    def __init__(self, keeper: sqlite3.Connection, descriptor: int) -> None:
        if os.fstat(descriptor).st_size < _MAPPED:
            raise ValueError("-shm is shorter than the wal-index header")
        address = _libc.mmap(None, _MAPPED, mmap.PROT_READ, mmap.MAP_SHARED, descriptor, 0)
        if address is None or address == _MAP_FAILED:
            raise OSError(ctypes.get_errno(), "mmap of -shm failed")
        self._keeper: sqlite3.Connection | None = keeper
        self._address: int | None = address
        self._view: memoryview | None = memoryview(
            (ctypes.c_char * _MAPPED).from_address(address)
        ).cast("B")

    def header(self) -> bytes | None:
        """The header's bytes now, or None when they cannot be told (half-written, not built,
        closed): the caller then asks SQLite."""
        view = self._view
        if view is None:
            return None
        first = view[:HEADER].tobytes()
        if view[HEADER:_MAPPED].tobytes() != first or first[_IS_INIT] != 1:
            return None
        return first

    def close(self) -> None:
        view, self._view = self._view, None
        if view is not None:
            view.release()
        address, self._address = self._address, None
        if address is not None:
            _libc.munmap(address, _MAPPED)
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.close()


def held_descriptor(path: str) -> int | None:
    """A descriptor of this process open on the file `path` (SQLite's, once a connection
    has opened it), found in /proc/self/fd; None when there is none or no /proc."""
    try:
        wanted = os.stat(path)
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    for name in names:
        try:
            found = os.stat(f"/proc/self/fd/{name}")
        except OSError:
            continue  # closed meanwhile, or the listing's own descriptor
        if (found.st_dev, found.st_ino) == (wanted.st_dev, wanted.st_ino):
            return int(name)
    return None


def open_wal_index(database: str) -> WalIndex | None:
    """The wal-index of the database file `database`, or None when its header cannot stand
    for `PRAGMA data_version`: not in WAL mode (a `-shm` file left from before would never
    move), an in-memory database, a CPU that may reorder the two copies' loads, or no
    descriptor of `-shm` to map."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if platform.machine().lower() not in _ORDERED_LOADS:
        return None
    keeper = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    try:
        # A read opens the WAL and maps `-shm` (built by the first connection), and leaves
        # no transaction open: the keeper holds back no checkpoint.
        keeper.execute("SELECT count(*) FROM sqlite_master").fetchone()
        mode = keeper.execute("PRAGMA journal_mode").fetchone()[0]
        descriptor = held_descriptor(f"{database}-shm")
        if str(mode).lower() != "wal" or descriptor is None:
            keeper.close()
            return None
        return WalIndex(keeper, descriptor)
    except (OSError, ValueError, sqlite3.Error):
        keeper.close()
        return None
