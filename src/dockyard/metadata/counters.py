"""Counters in fixed time windows (pull rate limits, failed logins), shared by all workers.

They live in their own SQLite file with synchronous=OFF: a counter lost in a power cut costs a
few free pulls, and keeping them out of the metadata database keeps its fsyncs for real data.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol


class Counters(Protocol):
    """What both backends offer: windowed counts and last-use marks."""

    async def hit(self, key: str, window_seconds: int, amount: int = 1) -> tuple[int, float]: ...

    async def peek(self, key: str, window_seconds: int) -> tuple[int, float]: ...

    async def touch(self, key: str, now: float | None = None) -> None: ...

    async def touched(self, keys: list[str]) -> dict[str, float]: ...


class SQLiteCounters:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS counters (key TEXT NOT NULL, "
                "window INTEGER NOT NULL, count INTEGER NOT NULL, "
                "PRIMARY KEY (key, window)) WITHOUT ROWID"
            )
            db.execute(
                "CREATE TABLE IF NOT EXISTS touches (key TEXT PRIMARY KEY, "
                "at REAL NOT NULL) WITHOUT ROWID"
            )
        self._last_sweep = 0.0

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(
                self.path, timeout=5, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            self._local.db = db
        return db

    def _hit(self, key: str, window: int, amount: int) -> int:
        db = self._connect()
        row = db.execute(
            "INSERT INTO counters (key, window, count) VALUES (?, ?, ?) "
            "ON CONFLICT (key, window) DO UPDATE SET count = count + excluded.count "
            "RETURNING count",
            (key, window, amount),
        ).fetchone()
        return int(row[0])

    def _peek(self, key: str, window: int) -> int:
        row = (
            self._connect()
            .execute("SELECT count FROM counters WHERE key = ? AND window = ?", (key, window))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def _sweep(self, before_window: int, window_seconds: int) -> None:
        self._connect().execute(
            "DELETE FROM counters WHERE window < ?", (before_window - 2 * window_seconds,)
        )

    async def hit(
        self, key: str, window_seconds: int, amount: int = 1, now: float | None = None
    ) -> tuple[int, float]:
        """Add to the counter of the current window; returns (count, seconds until reset)."""
        now = now or time.time()
        window = int(now // window_seconds) * window_seconds
        count = await asyncio.to_thread(self._hit, key, window, amount)
        if now - self._last_sweep > 600:
            self._last_sweep = now
            await asyncio.to_thread(self._sweep, window, window_seconds)
        return count, window + window_seconds - now

    async def peek(
        self, key: str, window_seconds: int, now: float | None = None
    ) -> tuple[int, float]:
        now = now or time.time()
        window = int(now // window_seconds) * window_seconds
        return await asyncio.to_thread(self._peek, key, window), window + window_seconds - now

    # -- last use, for least-recently-used eviction --------------------------------------
    def _touch(self, key: str, now: float) -> None:
        self._connect().execute(
            "INSERT INTO touches (key, at) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET at = excluded.at", (key, now))

    def _touched(self, keys: list[str]) -> dict[str, float]:
        found: dict[str, float] = {}
        db = self._connect()
        for start in range(0, len(keys), 500):
            batch = keys[start:start + 500]
            marks = ",".join("?" * len(batch))
            found.update(db.execute(f"SELECT key, at FROM touches WHERE key IN ({marks})",
                                    batch).fetchall())
        return found

    async def touch(self, key: str, now: float | None = None) -> None:
        await asyncio.to_thread(self._touch, key, now or time.time())

    async def touched(self, keys: list[str]) -> dict[str, float]:
        return await asyncio.to_thread(self._touched, keys)

