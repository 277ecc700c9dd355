"""The content lock of replicas that share a PostgreSQL database: an advisory lock there.

Publishing content takes it shared and sweeping it away takes it exclusively, as the
single-node file lock does (`dockyard.service.content_lock`), but it holds across every
replica, so a cache prune on one replica can never remove bytes a push on another is linking.

Publishers in one process share one session lock: the first takes it on a connection of its
own, the last one out gives it back, so a busy replica costs the database one connection and
two statements per idle-to-busy turn, not per push.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from dockyard.metadata.postgres_runner import connection_lost

# Advisory lock ids are one namespace per database: ours are "dock" + 1 and + 2.
CONTENT_LOCK_ID = 0x646F636B01
COLLECTOR_TURN_ID = 0x646F636B02

# Whether a session waits for the lock: an advisory lock on one bigint key shows in pg_locks
# as its high and low 32 bits (classid, objid) with objsubid 1.
_WAITING = sa.text(
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND classid::bigint = :high AND objid::bigint = :low AND objsubid = 1)"
)


class AdvisoryContentLock:
    def __init__(
        self,
        engine: AsyncEngine,
        lock_id: int = CONTENT_LOCK_ID,
        turn_id: int = COLLECTOR_TURN_ID,
    ) -> None:
        self.engine = engine
        self.lock_id = lock_id
        self.turn_id = turn_id
        self._guard = asyncio.Lock()
        self._holders = 0
        self._conn: AsyncConnection | None = None

    async def _lock(self, conn: AsyncConnection, function: str, lock_id: int | None = None) -> None:
        lock_id = self.lock_id if lock_id is None else lock_id
        await conn.execute(sa.text(f"SELECT {function}(:id)"), {"id": lock_id})
        await conn.commit()  # a session lock outlives the transaction; don't idle in one

    async def _unlock(
        self, conn: AsyncConnection, function: str, lock_id: int | None = None
    ) -> None:
        try:
            await self._lock(conn, function, lock_id)
        except BaseException:
            # The session (and its lock) must not go back to the pool still locked.
            await conn.invalidate()
            raise
        finally:
            await conn.close()

    async def _locked(self, function: str, lock_id: int | None = None) -> AsyncConnection:
        """A connection of its own holding the lock (waiting for it as long as it takes).
        A pooled connection is not pinged first: one the server dropped is replaced once."""
        try:
            return await self._locked_once(function, lock_id)
        except Exception as exc:
            if not connection_lost(exc):
                raise
        return await self._locked_once(function, lock_id)

    async def _locked_once(self, function: str, lock_id: int | None) -> AsyncConnection:
        conn = await self.engine.connect()
        try:
            await self._lock(conn, function, lock_id)
        except BaseException:
            # Cancelled while waiting: the lock may be granted late, so the session goes.
            await conn.invalidate()
            await conn.close()
            raise
        return conn

    @contextlib.asynccontextmanager
    async def publishing(self) -> AsyncIterator[None]:
        async with self._guard:
            if self._holders == 0:
                self._conn = await self._locked("pg_advisory_lock_shared")
            self._holders += 1
        try:
            yield
        finally:
            async with self._guard:
                self._holders -= 1
                if self._holders == 0 and self._conn is not None:
                    conn, self._conn = self._conn, None
                    await self._unlock(conn, "pg_advisory_unlock_shared")

    @contextlib.asynccontextmanager
    async def sweeping(self) -> AsyncIterator[None]:
        conn = await self._locked("pg_advisory_lock")
        try:
            yield
        finally:
            await self._unlock(conn, "pg_advisory_unlock")

    async def contended(self) -> bool:
        try:
            return await self._contended_once()
        except Exception as exc:
            if not connection_lost(exc):
                raise
        return await self._contended_once()

    async def _contended_once(self) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(
                _WAITING, {"high": self.lock_id >> 32, "low": self.lock_id & 0xFFFFFFFF}
            )
            await conn.commit()
        return bool(found)

    @contextlib.asynccontextmanager
    async def collecting(self) -> AsyncIterator[None]:
        conn = await self._locked("pg_advisory_lock", self.turn_id)
        try:
            yield
        finally:
            await self._unlock(conn, "pg_advisory_unlock", self.turn_id)
