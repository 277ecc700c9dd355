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
other connection has it open, so the mapped file is the live one and never shrinks under it.
"""

from __future__ import annotations

import mmap
import platform
import sqlite3

HEADER = 48  # bytes of one copy of the header (WalIndexHdr)
_IS_INIT = 12  # its `isInit` byte: 1 once a connection built the index
_ORDERED_LOADS = {"x86_64", "amd64", "i386", "i686"}


class WalIndex:
    """The wal-index header of one database in WAL mode, mapped read-only, and the connection
    that keeps it the live one."""

    def __init__(self, keeper: sqlite3.Connection, shm: str) -> None:
        self._keeper: sqlite3.Connection | None = keeper
        with open(shm, "rb") as file:
            self._map: mmap.mmap | None = mmap.mmap(
                file.fileno(), 2 * HEADER, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ
            )

    def header(self) -> bytes | None:
        """The header's bytes now, or None when they cannot be told (half-written, not built,
        closed): the caller then asks SQLite."""
        view = self._map
        if view is None:
            return None
        first = view[:HEADER]
        if view[HEADER : 2 * HEADER] != first or first[_IS_INIT] != 1:
            return None
        return first

    def close(self) -> None:
        view, self._map = self._map, None
        if view is not None:
            view.close()
        keeper, self._keeper = self._keeper, None
        if keeper is not None:
            keeper.close()


def open_wal_index(database: str) -> WalIndex | None:
    """The wal-index of the database file `database`, or None when its header cannot stand
    for `PRAGMA data_version`: not in WAL mode (a `-shm` file left from before would never
    move), an in-memory database, or a CPU that may reorder the two copies' loads."""
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
        if str(mode).lower() != "wal":
            keeper.close()
            return None
        return WalIndex(keeper, f"{database}-shm")
    except (OSError, ValueError, sqlite3.Error):  # ValueError: `-shm` shorter than the header
        keeper.close()
        return None
