"""Counters in fixed time windows (pull rate limits, failed logins), shared by all workers.

They live in their own SQLite file with synchronous=OFF: a counter lost in a power cut costs a
few free pulls, and keeping them out of the metadata database keeps its fsyncs for real data.

Every counted pull writes here, so writes are made cheap: writers take turns (see
`writer_turns`), and a write whose turn is free runs right on the event loop (tens of
microseconds); only one that would wait goes to a thread. Measured on token-checked manifest
GETs: see bench/README.md ("Figures behind design choices").
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from dockyard.metadata.writer_turns import WriterTurns

T = TypeVar("T")
_WAIT = object()  # the write lock was taken: do it in a thread, which may wait


class Counters(Protocol):
    """What both backends offer: windowed counts and last-use marks."""

    async def hit(
        self, key: str, window_seconds: int, amount: int = 1, now: float | None = None
    ) -> tuple[int, float]: ...

    async def peek(self, key: str, window_seconds: int) -> tuple[int, float]: ...

    def peek_now(self, key: str, window_seconds: int) -> int | None: ...

    async def touch(self, key: str, now: float | None = None) -> None: ...

    async def touched(self, keys: list[str]) -> dict[str, float]: ...


def _window_end(now: float, window_seconds: int) -> int:
    """When the fixed window holding `now` ends (windows are aligned on their length)."""
    return (int(now // window_seconds) + 1) * window_seconds


class SQLiteCounters:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".writer")
        self._turns = WriterTurns(self.lock_path)
        self._local = threading.local()
        with self._connect() as db:
            # Rows are named by when their window ends: a sweep then knows every row's age,
            # whatever its window's length. (The table before, by the window's start, was swept
            # by the length of the sweeping write's window: a 300 s failed-login write erased
            # the 6 h pull counts. Counters are disposable: that table is dropped.)
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'counters'").fetchone():
                db.execute("DROP TABLE IF EXISTS counters")
            db.execute(
                "CREATE TABLE IF NOT EXISTS counts (key TEXT NOT NULL, "
                "ends INTEGER NOT NULL, count INTEGER NOT NULL, "
                "PRIMARY KEY (key, ends)) WITHOUT ROWID"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS touches (key TEXT PRIMARY KEY, "
                "at REAL NOT NULL) WITHOUT ROWID"
            )
        self._last_sweep = 0.0

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # Writes wait for their turn on the file lock, so SQLite itself need not wait long.
            db = sqlite3.connect(
                self.path, timeout=0.1, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            self._local.db = db
        return db

    def _turn(self, fn: Callable[..., T], *args: object, wait: bool) -> T | object:
        """`fn(*args)` in the writers' turn; without `wait`, _WAIT if the turn is taken (or
        SQLite reports the file busy) instead of waiting."""
        with self._turns.turn(wait=wait) as mine:
            if not mine:
                return _WAIT
            try:
                return fn(*args)
            except sqlite3.OperationalError as exc:
                if wait or "locked" not in str(exc).lower():
                    raise
                return _WAIT

    async def _write(self, fn: Callable[..., T], *args: object) -> T:
        done = self._turn(fn, *args, wait=False)
        if done is _WAIT:
            done = await asyncio.to_thread(self._turn, fn, *args, wait=True)
        return done  # type: ignore[return-value]

    def _hit(self, key: str, ends: int, amount: int) -> int:
        db = self._connect()
        row = db.execute(
            "INSERT INTO counts (key, ends, count) VALUES (?, ?, ?) "
            "ON CONFLICT (key, ends) DO UPDATE SET count = count + excluded.count "
            "RETURNING count",
            (key, ends, amount),
        ).fetchone()
        return int(row[0])

    def _peek(self, key: str, ends: int) -> int:
        row = (
            self._connect()
            .execute("SELECT count FROM counts WHERE key = ? AND ends = ?", (key, ends))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def _sweep(self, now: float) -> None:
        # A minute's grace: an attempt given back (see auth.gate) goes to the window it was
        # counted in, which may just have ended.
        self._connect().execute("DELETE FROM counts WHERE ends < ?", (now - 60,))

    async def hit(
        self, key: str, window_seconds: int, amount: int = 1, now: float | None = None
    ) -> tuple[int, float]:
        """Add to the counter of the current window; returns (count, seconds until reset)."""
        now = now or time.time()
        ends = _window_end(now, window_seconds)
        count = await self._write(self._hit, key, ends, amount)
        if now - self._last_sweep > 600:
            self._last_sweep = now
            await asyncio.to_thread(self._sweep, time.time())
        return count, ends - now

    async def peek(
        self, key: str, window_seconds: int, now: float | None = None
    ) -> tuple[int, float]:
        now = now or time.time()
        ends = _window_end(now, window_seconds)
        return await asyncio.to_thread(self._peek, key, ends), ends - now

    def peek_now(self, key: str, window_seconds: int) -> int | None:
        """The count, read on the caller's thread (a WAL read does not wait for writers);
        None if SQLite reports the file busy, for the caller to await `peek` instead."""
        try:
            return self._peek(key, _window_end(time.time(), window_seconds))
        except sqlite3.OperationalError:
            return None

    # -- last use, for least-recently-used eviction --------------------------------------
    def _touch(self, key: str, now: float) -> None:
        self._connect().execute(
            "INSERT INTO touches (key, at) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET at = excluded.at",
            (key, now),
        )

    def _touched(self, keys: list[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        db = self._connect()
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            marks = ",".join("?" * len(batch))
            found.update(
                db.execute(f"SELECT key, at FROM touches WHERE key IN ({marks})", batch).fetchall()
            )
        return found

    async def touch(self, key: str, now: float | None = None) -> None:
        await self._write(self._touch, key, now or time.time())

    async def touched(self, keys: list[str]) -> dict[str, float]:
        return await asyncio.to_thread(self._touched, keys)
