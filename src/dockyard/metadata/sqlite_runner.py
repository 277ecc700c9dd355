"""SQLite's transaction runner: a small thread pool, group commit and writer turns.

Each read is one short transaction on a pool thread, or, for a lookup by key, one statement on
the event loop itself; a lookup that names its key is answered from memory while SQLite's
`data_version` says no connection (of this process or another) committed anything since.
The wal-index header (`wal_index`), read from shared memory without a statement, says first
whether anything may have been committed: only then is `data_version` read. The store's
`version()`, which answers remembered above the store stand on, is that header.

Writes queue for group commit (`group_commit`): one pool thread takes everything queued,
waits for its writer turn (`writer_turns`), runs it all in one transaction that takes the
write lock up front (BEGIN IMMEDIATE, so several server processes share the file without
lock-upgrade deadlocks) and commits once. A durable write is acknowledged once the WAL was
synced since its commit (`wal_sync`), a sync taken outside the write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from dockyard.core.errors import StorageFullError
from dockyard.metadata import direct
from dockyard.metadata.group_commit import GroupCommitter, Job
from dockyard.metadata.wal_index import WalIndex, open_wal_index
from dockyard.metadata.wal_sync import WalSync
from dockyard.metadata.writer_turns import WriterTurns

if TYPE_CHECKING:
    from dockyard.metadata.advisory_lock import AdvisoryContentLock
    from dockyard.metadata.runner import OneValue, TransactionObserver

T = TypeVar("T")

# Keyed lookups remembered at most (tags, manifests, policies of the repositories pulled).
RECALLED_MAX = 50_000
# Names of listing pages remembered at most (a tag list of 5,000 counts 5,001): some MiB.
RECALLED_ITEMS_MAX = 100_000
_MISSING = object()
_NOT_OPENED = object()


def sqlite_engine(path: Path) -> Engine:
    engine = sa.create_engine(f"sqlite:///{path}", pool_size=8, max_overflow=8)
    sa.event.listen(engine, "connect", _on_connect)
    sa.event.listen(engine, "begin", _on_begin)
    return engine


def _on_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_conn.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=FULL",
        "foreign_keys=ON",
        "busy_timeout=30000",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _on_begin(conn: Connection) -> None:
    if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return  # single statements, each its own implicit transaction
    write = conn.get_execution_options().get("dockyard_write", False)
    direct.run_sql(conn, "BEGIN IMMEDIATE" if write else "BEGIN")


class SQLiteRunner:
    def __init__(self, engine: Engine, writer_lock: Path | None = None) -> None:
        self.engine = engine
        self._turns = WriterTurns(writer_lock) if writer_lock is not None else None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="metadata")
        self._group = GroupCommitter(self._pool, self._run_batch)
        database = engine.url.database
        self._database = database
        self._wal = WalSync(f"{database}-wal", self._pool) if database else None
        # Opened with the event loop's first lookup (the file is in WAL mode by then);
        # `_NOT_OPENED` until then, None where SQLite is asked instead.
        self._wal_index: Any = _NOT_OPENED
        # One connection kept per thread (the pool's and the event loop's) for reads, and
        # one per pool thread for writes: a read is BEGIN, the statements and COMMIT, with no
        # pool checkout, events and reset around it.
        self._local = threading.local()
        self._held: list[Connection] = []
        self._forget: list[Callable[[], None]] = []
        self._observer: TransactionObserver | None = None

    @property
    def shared(self) -> bool:
        return False  # one node's file

    def on_abort(self, forget: Callable[[], None]) -> None:
        self._forget.append(forget)

    def content_lock(self) -> AdvisoryContentLock | None:
        return None

    def observe(self, observer: TransactionObserver) -> None:
        self._observer = observer

    async def has_schema(self) -> bool:
        return await self.read(_has_alembic_table)

    async def migrate(self) -> None:
        """Nothing to do: `SQLMetadataStore.open_sqlite` migrates the file when it opens it."""

    async def close(self) -> None:
        self._pool.shutdown(wait=True)
        index, self._wal_index = self._wal_index, None
        if isinstance(index, WalIndex):
            index.close()
        for conn in self._held:
            with contextlib.suppress(Exception):
                conn.close()
        self._held.clear()
        self.engine.dispose()

    # -- reads ---------------------------------------------------------------------------
    async def read(
        self,
        work: Callable[[Connection], T],
        *,
        inline: bool = False,
        key: Hashable = None,
        sized: bool = False,
        one: OneValue[T] | None = None,
    ) -> T:
        """`inline` runs it on the event loop itself: a lookup by key takes less time in
        SQLite than the hop to a thread and back. The loop never waits on a lock for long: a
        locked database sends the read to the thread pool after all. With `key`, the result
        is remembered until the database changes (`_remembered`): a remembered answer is no
        transaction, and is not reported as one. `sized` marks a result whose length counts
        against its own bound (`RECALLED_ITEMS_MAX`: listing pages), apart from the lookups'.
        `one` is not used: `work` reads the same, and a remembered page costs no statement."""
        version = None
        if key is not None:
            found = self._remembered(key, sized)
            if found is not _MISSING:
                return found  # type: ignore[no-any-return]
            version = self._local.recalled_version
        observer = self._observer
        started = time.perf_counter() if observer is not None else 0.0
        try:
            if inline:
                try:
                    result = self._read_here(work, patience_ms=100)
                    if key is not None:
                        self._remember(key, result, sized)
                    return result
                except sa.exc.OperationalError as exc:
                    if "locked" not in str(exc.orig).lower():
                        raise
            result = await asyncio.get_running_loop().run_in_executor(
                self._pool, self._read_here, work
            )
            # Other requests ran on the loop meanwhile: one of them may have seen a newer
            # version (and forgotten everything since). Then this result, read in between,
            # belongs to neither version and is not remembered.
            if key is not None and self._local.recalled_version == version:
                self._remember(key, result, sized)
            return result
        finally:
            if observer is not None:
                observer("read", time.perf_counter() - started, 0)

    def _remembered(self, key: Hashable, sized: bool) -> Any:
        """The result remembered under `key` while `PRAGMA data_version` has not moved since it
        was read, else `_MISSING` (and, when it moved, everything is forgotten)."""
        local = self._local
        if self._moved():
            return _MISSING
        return (local.recalled_sized if sized else local.recalled).get(key, _MISSING)

    def _moved(self) -> bool:
        """Whether anything was committed since the lookups were remembered; if so, forget
        them all. The wal-index header unchanged since the data version was last read says
        nothing was, without a statement (`wal_index`); otherwise `PRAGMA data_version` is
        read. The header is read first: a commit landing between the two moves the header
        past the one kept, and the next lookup reads the data version again."""
        self._loop_connection()
        local = self._local
        index = self._wal_index
        header = index.header() if isinstance(index, WalIndex) else None
        if header is not None and header == local.recalled_header:
            return False
        version = local.version_cursor.execute("PRAGMA data_version").fetchone()[0]
        if index is _NOT_OPENED:  # the loop's connection has read: the WAL and `-shm` are open
            self._wal_index = open_wal_index(self._database or "")
        local.recalled_header = header
        if version != local.recalled_version:
            local.recalled.clear()
            local.recalled_sized.clear()
            local.recalled_items = 0
            local.recalled_version = version
            return True
        return False

    def version(self) -> Hashable:
        """Read now: equal to an earlier answer only if no connection committed anything
        since. The wal-index header (`wal_index`: what `PRAGMA data_version` itself tests,
        read without a statement or a lock), or when it cannot be read, this thread's
        remembered lookups' data version (one statement on the loop), only ever equal to
        answers of this thread's own connection (the count is one connection's) and never to
        a header."""
        if self._wal_index is _NOT_OPENED:
            self._moved()  # opens it
        index = self._wal_index
        if isinstance(index, WalIndex):
            header = index.header()
            if header is not None:
                return header
        self._moved()
        local = self._local
        return (local.raw, local.recalled_version)

    def _remember(self, key: Hashable, result: Any, sized: bool) -> None:
        """`result`, remembered under the version `_remembered` read before it was read: a
        commit landing while the work ran moves the version past it, so the next lookup
        forgets the result rather than serve it stale."""
        local = self._local
        if sized:
            weight = 1 + (len(result) if result is not None else 0)
            if weight > RECALLED_ITEMS_MAX:
                return
            if local.recalled_items + weight > RECALLED_ITEMS_MAX:
                local.recalled_sized.clear()  # bounded whatever pages clients ask for
                local.recalled_items = 0
            local.recalled_sized[key] = result
            local.recalled_items += weight
            return
        recalled = local.recalled
        if len(recalled) >= RECALLED_MAX:
            recalled.clear()  # bounded whatever names clients ask for
        recalled[key] = result

    def _loop_connection(self) -> Connection:
        """This thread's connection for lookups on the loop: statements run in SQLite's
        implicit transaction, and a lock is waited for 100 ms at most. With it, the thread's
        memory of keyed lookups: `PRAGMA data_version` is a count of one connection, moved
        whenever any other connection commits (every write runs on the pool's own
        connections; other processes have theirs), so memory and count go together."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.engine.connect()
            raw = conn.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA busy_timeout=100")
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self._local.conn = conn
            self._local.raw = raw
            # Kept: a pull reads the version once or twice, and a cursor made per read costs
            # as much as the statement.
            self._local.version_cursor = raw.cursor()
            self._local.recalled = {}
            self._local.recalled_sized = {}
            self._local.recalled_items = 0
            self._local.recalled_version = None
            self._local.recalled_header = None
            self._held.append(conn)
        return conn

    def _read_here(self, work: Callable[[Connection], T], patience_ms: int | None = None) -> T:
        """On a pool thread: `work` in a transaction. On the loop (`patience_ms` set): `work`
        is one statement, run in SQLite's own implicit transaction (an explicit BEGIN and
        COMMIT would cost more than the lookup)."""
        if patience_ms is not None:
            return work(self._loop_connection())
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.engine.connect()
            self._local.conn = conn
            self._held.append(conn)
        with conn.begin():
            return work(conn)

    # -- writes --------------------------------------------------------------------------
    async def write(
        self, work: Callable[[Connection], T], *, durable: bool = True, turn: str | None = None
    ) -> T:
        """`durable=False` is for the state of uploads in flight, whose bytes are not synced
        before the upload completes either: SQLite then commits without waiting for the disk
        (the next durable commit carries it along). A power cut may forget such a record, and
        the client starts its upload again; it never corrupts anything or loses a blob.
        `turn` changes nothing: SQLite's writers all take turns already."""
        result: T = await self._group.submit(work, durable)
        return result

    def _writer_turn(self) -> contextlib.AbstractContextManager[object]:
        """Writers (threads and worker processes) queue for their turn before BEGIN IMMEDIATE."""
        return self._turns.turn() if self._turns is not None else contextlib.nullcontext()

    @property
    def wal_syncs(self) -> int:
        """How many times the WAL was synced for durable writes."""
        return self._wal.syncs if self._wal is not None else 0

    def _run_batch(self, batch: list[Job]) -> bool:
        """Every queued write in one transaction, committed once. Should one of several fail,
        the transaction is rolled back and each write runs again in a transaction of its own,
        so it fails alone (savepoints around every write would slow every push down; failures
        are rare). When any write asked for durability, the callers are told only once the WAL
        was synced since (`WalSync`, which then tells them: True), and this thread moves on
        to the next batch meanwhile."""
        started = time.perf_counter()
        retries = 0
        self._run_together(batch)
        if len(batch) > 1 and any(job.outcome is not None and not job.outcome[0] for job in batch):
            retries = len(batch)
            for job in batch:
                job.outcome = None
                self._run_together([job])
        observer = self._observer
        if self._wal is None or not any(job.durable for job in batch):
            if observer is not None:
                observer("write", time.perf_counter() - started, retries)
            return False

        def durable(error: BaseException | None) -> None:
            for job in batch:
                if job.outcome is None:
                    job.outcome = (False, RuntimeError("write was not run"))
                elif error is not None and job.outcome[0]:
                    job.outcome = (False, error)  # committed, but not known to be on the disk
                job.settle()
            if observer is not None:
                observer("write", time.perf_counter() - started, retries)

        self._wal.after_commit(durable)
        return True

    def _writer(self) -> Connection:
        """This pool thread's write connection, kept as the read ones are."""
        conn: Connection | None = getattr(self._local, "writer", None)
        if conn is None:
            conn = self.engine.connect().execution_options(dockyard_write=True)
            if self._wal is not None:
                # Commits write the WAL without syncing it; a durable write waits for `WalSync`.
                raw = conn.connection.driver_connection
                assert raw is not None
                raw.execute("PRAGMA synchronous=NORMAL")
            self._local.writer = conn
            self._held.append(conn)
        return conn

    def _run_together(self, batch: list[Job]) -> None:
        try:
            with self._writer_turn():
                conn = self._writer()
                raw = conn.connection.driver_connection
                assert raw is not None
                try:
                    with conn.begin():
                        for job in batch:
                            job.outcome = (True, job.fn(conn))
                finally:
                    if raw.in_transaction:  # a failed COMMIT can leave it open
                        with contextlib.suppress(Exception):
                            raw.execute("ROLLBACK")
        except Exception as exc:
            self._abandon(exc)
            if isinstance(exc, sa.exc.OperationalError) and "full" in str(exc.orig).lower():
                exc = StorageFullError(str(exc.orig))  # SQLITE_FULL; rolled back
            for job in batch:
                job.outcome = (False, exc)

    def _abandon(self, exc: Exception) -> None:
        """Nothing was committed: whatever the writes returned is void, and a repository id
        one of them read (perhaps created in this transaction) may be a lie. After a database
        error the connection starts afresh, whatever state it was left in."""
        for forget in self._forget:
            forget()
        writer = getattr(self._local, "writer", None)
        if writer is not None and isinstance(exc, sa.exc.DBAPIError):
            self._local.writer = None
            with contextlib.suppress(Exception):
                self._held.remove(writer)
            with contextlib.suppress(Exception):
                writer.invalidate()


def _has_alembic_table(conn: Connection) -> bool:
    return sa.inspect(conn).has_table("alembic_version")
