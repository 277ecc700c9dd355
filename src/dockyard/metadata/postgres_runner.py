"""PostgreSQL's transaction runner: an asyncpg engine, SERIALIZABLE writes run again on conflict.

Each transaction's statements run through `run_sync`, so the query modules are the same plain
functions of a `Connection` as on SQLite. Replicas share the database: a write that another
replica's transaction conflicted with is rolled back by PostgreSQL and simply run again.

Every exchange with the server is a round trip, and a read is mostly those: a read runs its
statements in autocommit (no BEGIN, no COMMIT), a connection is not pinged when taken from the
pool, and one found dead by its first statement is replaced and the work run again once.

A long listing page (a whole tag list, the catalog by a thousand) is remembered with the
database's snapshot taken just before it was read (`pg_current_snapshot()`: the oldest running
transaction, the next id to be given out, those running between). While the snapshot is the
same, no transaction that could write has begun or ended anywhere, on any replica: the page is
what reading it again would give, and asking costs one statement of one row instead of the
page. Short pages and lookups are read every time: the check would cost what they do.

A listing page (`OneValue`: one statement, one value) is sent to asyncpg as it is, on a pooled
connection taken without SQLAlchemy's `Connection`: no greenlet hop, no execution context, no
result object. Through SQLAlchemy that machinery was about half of a page's own CPU time.

PostgreSQL tells conflicts apart by index page, not by row: what one transaction read through
an index conflicts with whatever another writes into the same leaf page. The repositories of
one namespace are neighbours in every index keyed by their name or id, so concurrent pushes
into it (a fleet's first builds) read the pages the others wrote — a foreign key's check, a
trigger's lookup — and were rolled back in turn, until one used up its attempts. A write given
a `turn` (its namespace) first waits for the others of that turn, here and on every replica,
and only then starts its transaction: they never overlap, so never conflict.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
import weakref
from collections.abc import AsyncIterator, Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.core.errors import ErrorCode, RegistryError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
    from sqlalchemy.pool import PoolProxiedConnection

    from dockyard.metadata.advisory_lock import AdvisoryContentLock
    from dockyard.metadata.runner import OneValue, TransactionObserver

T = TypeVar("T")

# SQLSTATEs after which a write transaction is simply run again.
RETRYABLE = ("40001", "40P01")  # serialization failure, deadlock
ATTEMPTS = 8
# Prepared statements each pooled connection keeps (SQLAlchemy's asyncpg adapter prepares every
# statement it runs): more than the registry has, so none is evicted and prepared again, which
# costs a round trip more.
STATEMENT_CACHE = 1_000

# A turn is a session advisory lock of the two-key form: "dock", then the turn's hash (the
# content lock's one-key locks are apart from these). Two turns of one hash merely share it.
TURN_CLASS = 0x646F636B
TAKE_TURN = sa.text("SELECT pg_advisory_lock(:class, :key)")
# With the server's start time: a database restored from a backup (so started again) may hand
# out the same transaction ids again, over other data.
SNAPSHOT_SQL = "SELECT pg_current_snapshot()::text || ' ' || pg_postmaster_start_time()::text"
SNAPSHOT = sa.text(SNAPSHOT_SQL)
# Names of remembered pages held at most (each worker process), as SQLite's runner bounds its.
PAGE_ITEMS_MAX = 100_000
GIVE_TURN = sa.text("SELECT pg_advisory_unlock(:class, :key)")


def turn_key(turn: str) -> int:
    """The turn's 32-bit key, the same in every process and replica."""
    digest = hashlib.blake2b(turn.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def postgres_url(url: str) -> str:
    """`postgresql://…` as the user writes it, with the asyncpg driver SQLAlchemy needs."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError("expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
    return f"postgresql+asyncpg://{rest}"


def postgres_engine(url: str) -> AsyncEngine:
    """Connects lazily, in the event loop that first uses it."""
    # Loaded only for PostgreSQL: the asyncio extension (and greenlet) would weigh on every
    # SQLite server process otherwise.
    from sqlalchemy.ext.asyncio import create_async_engine

    # No pre-ping: through the asyncpg adapter it is three round trips (BEGIN, an empty
    # statement, ROLLBACK) on every checkout. A connection the server dropped fails its first
    # statement instead, and the runner runs the work again on a new one (`connection_lost`).
    return create_async_engine(
        postgres_url(url),
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=False,
        connect_args={"prepared_statement_cache_size": STATEMENT_CACHE},
    )


def sqlstate(exc: sa.exc.DBAPIError) -> str | None:
    """The SQLSTATE asyncpg reported, wherever SQLAlchemy's wrapping put it."""
    state = getattr(exc.orig, "sqlstate", None) or getattr(
        getattr(exc.orig, "__cause__", None), "sqlstate", None
    )
    return state if isinstance(state, str) else None


def connection_lost(exc: BaseException) -> bool:
    """The pooled connection was found closed (the server restarted, or dropped it while it sat
    idle). SQLAlchemy has then discarded it, and every connection the pool made before it."""
    return isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated


_LOST = object()  # `_read_one` did not answer: `work` must


class _DeadBeforeCommit(Exception):
    """A write's connection was found closed while its work ran, before any COMMIT was sent:
    the server kept nothing of the transaction. (`__cause__` is what the work raised.)"""


class PostgresRunner:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._forget: list[Callable[[], None]] = []
        self._observer: TransactionObserver | None = None
        # Attempts rolled back by a conflict with another transaction, for the logs and tests.
        self.conflicts = 0
        # This process's writers of a turn queue here, holding no connection while they wait.
        self._turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Long pages read, by key: (the snapshot taken before reading it, the page).
        self._pages: dict[Hashable, tuple[str, Any]] = {}
        self._page_items = 0
        # `OneValue` statements as asyncpg takes them: (SQL text, bound names in order, the
        # values bound in the statement itself), by statement.
        self._compiled: dict[Any, tuple[str, tuple[str, ...], dict[str, Any]]] = {}

    @property
    def shared(self) -> bool:
        return True

    def on_abort(self, forget: Callable[[], None]) -> None:
        self._forget.append(forget)

    def content_lock(self) -> AdvisoryContentLock | None:
        from dockyard.metadata.advisory_lock import AdvisoryContentLock

        return AdvisoryContentLock(self.engine)

    def observe(self, observer: TransactionObserver) -> None:
        self._observer = observer

    async def has_schema(self) -> bool:
        from dockyard.metadata.migrate import has_schema

        return await has_schema(self.engine)

    async def migrate(self) -> None:
        from dockyard.metadata.migrate import upgrade_async

        await upgrade_async(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()

    def version(self) -> Hashable | None:
        """None: no replica can tell cheaply that another changed nothing."""
        return None

    async def read(
        self,
        work: Callable[[Connection], T],
        *,
        inline: bool = False,
        key: Hashable = None,
        sized: bool = False,
        one: OneValue[T] | None = None,
    ) -> T:
        """With `key` and `sized` but not `inline` (a long page), the result is remembered
        with the snapshot before it (see the module's text); otherwise every statement is a
        round trip to the server. With `one`, that statement is sent to asyncpg directly;
        `work` is run after it only when its value did not tell, or the connection was found
        closed.

        Autocommit sees what a READ COMMITTED transaction (PostgreSQL's default, and what
        reads ran in before) sees: each statement reads everything committed when it starts,
        so a read after an acknowledged write, from any replica, sees that write."""
        started = time.perf_counter()
        page = key if key is not None and sized and not inline else None
        try:
            if one is not None:
                found = await self._read_one(one, page)
                if found is not _LOST:
                    return found  # type: ignore[return-value]
            try:
                return await self._read_once(work, page)
            except Exception as exc:
                if not connection_lost(exc):
                    raise
            return await self._read_once(work, page)
        finally:
            if self._observer is not None:
                self._observer("read", time.perf_counter() - started, 0)

    async def _read_once(self, work: Callable[[Connection], T], page: Hashable = None) -> T:
        async with self.engine.connect() as conn:
            # The adapter keeps the level and sends nothing: statements then run without a
            # BEGIN, and the pool's reset on return finds no transaction to roll back.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if page is None:
                return await conn.run_sync(work)
            # Taken before the page, each statement of which sees at least what it does: if
            # anything committed in between, the snapshot has moved on by the next ask.
            snapshot = str((await conn.execute(SNAPSHOT)).scalar_one())
            found = self._pages.get(page)
            if found is not None and found[0] == snapshot:
                return found[1]  # type: ignore[no-any-return]
            result = await conn.run_sync(work)
            self._remember_page(page, snapshot, result)
            return result

    async def _read_one(self, one: OneValue[T], page: Hashable) -> T | object:
        """`one` on a pooled connection's asyncpg connection, in autocommit (the adapter
        begins its transactions itself, and none is open between checkouts): one round trip
        (asyncpg keeps the statement prepared), two for a long page (the snapshot first).
        `_LOST` when `convert` could not tell, or when the connection was found closed: it is
        dropped, and the caller reads again through SQLAlchemy, which replaces every
        connection made before it."""
        from sqlalchemy.util import greenlet_spawn

        sql, names, bound = self._compiled_form(one.statement)
        args = [one.params[name] if name in one.params else bound[name] for name in names]
        fairy: PoolProxiedConnection | None = await self.engine.raw_connection()
        assert fairy is not None
        driver = fairy.driver_connection
        assert driver is not None
        try:
            snapshot = None
            if page is not None:
                snapshot = str(await driver.fetchval(SNAPSHOT_SQL))
                found = self._pages.get(page)
                if found is not None and found[0] == snapshot:
                    return found[1]  # type: ignore[no-any-return]
            result = one.convert(await driver.fetchval(sql, *args))
            if result is None:
                return _LOST  # the value alone does not tell: `work` reads it
            if snapshot is not None:
                self._remember_page(page, snapshot, result)
            return result
        except BaseException as exc:
            if not isinstance(exc, Exception):
                # Cancelled mid-statement: the connection may still owe an answer. (Dropping
                # it awaits nothing outside a greenlet: asyncpg terminates at once.)
                fairy.invalidate()
                fairy = None
                raise
            if not driver.is_closed():
                raise
            await greenlet_spawn(fairy.invalidate)
            fairy = None
            return _LOST
        finally:
            if fairy is not None:
                # In a greenlet: handing back a connection the pool no longer keeps closes it,
                # which the adapter awaits.
                await greenlet_spawn(fairy.close)

    def _compiled_form(self, statement: Any) -> tuple[str, tuple[str, ...], dict[str, Any]]:
        found = self._compiled.get(statement)
        if found is None:
            compiled = statement.compile(dialect=self.engine.dialect)
            names = tuple(compiled.positiontup or ())
            bound = {name: bind.value for name, bind in compiled.binds.items()}
            found = self._compiled[statement] = (str(compiled), names, bound)
        return found

    def _remember_page(self, key: Hashable, snapshot: str, result: Any) -> None:
        weight = 1 + (len(result) if result is not None else 0)
        if weight > PAGE_ITEMS_MAX:
            return
        old = self._pages.pop(key, None)
        if old is not None:
            self._page_items -= 1 + (len(old[1]) if old[1] is not None else 0)
        if self._page_items + weight > PAGE_ITEMS_MAX:
            self._pages.clear()  # bounded whatever pages clients ask for
            self._page_items = 0
        self._pages[key] = (snapshot, result)
        self._page_items += weight

    async def _write_once(self, work: Callable[[Connection], T], turn: str | None) -> T:
        async with self._turn(turn) as conn:
            conn = await conn.execution_options(isolation_level="SERIALIZABLE")
            async with conn.begin():
                try:
                    return await conn.run_sync(work)
                except Exception as exc:
                    if connection_lost(exc):
                        raise _DeadBeforeCommit() from exc
                    raise

    @contextlib.asynccontextmanager
    async def _turn(self, turn: str | None) -> AsyncIterator[AsyncConnection]:
        """A connection, holding the turn when there is one. The turn is taken and given back
        outside the write's transaction, so its snapshot is taken after the previous holder's
        commit."""
        if turn is None:
            async with self.engine.connect() as conn:
                yield conn
            return
        local = self._turns.get(turn)
        if local is None:
            local = self._turns[turn] = asyncio.Lock()
        params = {"class": TURN_CLASS, "key": turn_key(turn)}
        async with local, self.engine.connect() as conn:
            # Outside any transaction: one round trip each way (the commits send nothing).
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            try:
                await conn.execute(TAKE_TURN, params)
                await conn.commit()
            except BaseException as exc:
                # Cancelled while waiting, the lock may be granted all the same: a session
                # closed holds nothing, so this connection never goes back to the pool.
                await conn.invalidate()
                if isinstance(exc, Exception) and connection_lost(exc):
                    # A pooled connection found dead (none is pinged): nothing began yet.
                    raise _DeadBeforeCommit() from exc
                raise
            try:
                yield conn
            finally:
                try:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.execute(GIVE_TURN, params)
                    await conn.commit()
                except BaseException as exc:
                    # Closing the session gives the turn back as well; whatever ended the
                    # write (a conflict to run again, say) is what the caller must see.
                    await conn.invalidate()
                    if not isinstance(exc, Exception):
                        raise

    async def write(
        self, work: Callable[[Connection], T], *, durable: bool = True, turn: str | None = None
    ) -> T:
        """Every write is durable: PostgreSQL commits what replicas share."""
        started = time.perf_counter()
        attempt = 0
        reconnected = False
        try:
            for attempt in range(ATTEMPTS):
                try:
                    return await self._write_once(work, turn)
                except Exception as failure:
                    # Rolled back, whatever the reason (a refusal such as a quota's too): an id
                    # read in it may name a repository row that was never committed.
                    for forget in self._forget:
                        forget()
                    exc = failure
                    if isinstance(failure, _DeadBeforeCommit):
                        assert isinstance(failure.__cause__, Exception)
                        exc = failure.__cause__
                        if not reconnected:
                            # Once: the pool has dropped the connections made before this one.
                            # (A connection lost during COMMIT is never run again: that
                            # transaction may have committed.)
                            reconnected = True
                            continue
                    retryable = isinstance(exc, sa.exc.DBAPIError) and sqlstate(exc) in RETRYABLE
                    if not retryable:
                        if exc is failure:
                            raise
                        raise exc from exc.__cause__
                    self.conflicts += 1
                    if attempt == ATTEMPTS - 1:
                        # Nothing was written: the client may simply send the request again.
                        raise RegistryError(
                            ErrorCode.UNAVAILABLE,
                            "the database kept rolling this change back for concurrent ones; "
                            "nothing was changed, try again",
                            headers={"Retry-After": "1"},
                        ) from exc
                    # Another replica's transaction touched the same rows: ours runs again.
                    # A random share of the back-off: two transactions that conflicted once
                    # would, waiting the same time, meet again on their next attempt.
                    await asyncio.sleep(random.uniform(0, 0.01 * (2**attempt)))
        finally:
            if self._observer is not None:
                self._observer("write", time.perf_counter() - started, attempt)
        raise AssertionError("unreachable")
