"""Metadata store over SQLAlchemy Core; SQLite is the embedded default.

Each operation is one short transaction run in a small thread pool, so the event loop never waits
on the database. Writes on SQLite take the write lock up front (BEGIN IMMEDIATE), which lets
several server processes share one database file without lock-upgrade deadlocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from dockyard.core.errors import StorageFullError
from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.base import (
    CacheUsage,
    ChildrenMissing,
    ContentGraph,
    ManifestInUse,
    ManifestRecord,
    Reference,
    UploadRecord,
)
from dockyard.metadata.group_commit import GroupCommitter, Job
from dockyard.metadata.writer_turns import WriterTurns

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")


def sqlite_engine(path: Path) -> Engine:
    engine = sa.create_engine(f"sqlite:///{path}", pool_size=8, max_overflow=8)

    @sa.event.listens_for(engine, "connect")
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

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return  # single statements, each its own implicit transaction
        write = conn.get_execution_options().get("dockyard_write", False)
        direct.run_sql(conn, "BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def postgres_url(url: str) -> str:
    """`postgresql://…` as the user writes it, with the asyncpg driver SQLAlchemy needs."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError("expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE")
    return f"postgresql+asyncpg://{rest}"


# SQLSTATEs after which a write transaction is simply run again.
_RETRYABLE = ("40001", "40P01")  # serialization failure, deadlock


_PREPARED: dict[tuple[str, tuple[str, ...]], Any] = {}


def _prepared(conn: Connection, key: tuple[str, ...], build: Callable[[Any], Any]) -> Any:
    """A dialect's statement built once (insert-or-ignore and upserts differ between SQLite and
    PostgreSQL): executing a statement object again reuses its cache key and compiled form."""
    name = conn.dialect.name
    stmt = _PREPARED.get((name, key))
    if stmt is None:
        stmt = _PREPARED[(name, key)] = build(postgresql if name == "postgresql" else sqlite)
    return stmt


def _bump_version(conn: Connection, table: sa.Table, key: str, value: object) -> None:
    """Move a listing's version on (the row is made at 1): caches of the listing compare it."""
    def build(dialect: Any) -> sa.Executable:
        stmt = dialect.insert(table).values({key: sa.bindparam("key"), "version": 1})
        return stmt.on_conflict_do_update(
            index_elements=[table.c[key]], set_={"version": table.c.version + 1})

    direct.execute(conn, _prepared(conn, ("bump-version", table.name), build), {"key": value})


class SQLMetadataStore:
    """One class for every dialect: the same Core statements, in the same transactions.

    SQLite runs them on a small thread pool (no event-loop work per statement); PostgreSQL on
    an asyncpg engine, where each transaction's statements run through `run_sync` and writes
    are SERIALIZABLE, retried when the database reports a conflict.
    """

    def __init__(self, engine: Engine | None, async_engine: AsyncEngine | None = None,
                 writer_lock: Path | None = None) -> None:
        self.engine = engine
        self.async_engine = async_engine
        self._turns = WriterTurns(writer_lock) if writer_lock is not None else None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="metadata")
        self._group = GroupCommitter(self._pool, self._run_batch)
        # SQLite reads: one connection kept per thread (the pool's and the event loop's), so
        # a read is BEGIN, the statements and COMMIT, with no pool checkout and reset.
        self._local = threading.local()
        self._held: list[Connection] = []
        self._repo_ids: dict[str, int] = {}

    @classmethod
    def open_sqlite(cls, path: Path, *, migrate: bool = True) -> SQLMetadataStore:
        """`migrate=False` for server workers: the serving process migrated before starting
        them, and they then never load Alembic."""
        engine = sqlite_engine(path)
        if migrate:
            from dockyard.metadata.migrate import upgrade

            upgrade(engine)
        return cls(engine, writer_lock=path.with_name(path.name + ".writer"))

    @classmethod
    def open_postgres(cls, url: str) -> SQLMetadataStore:
        """Connects lazily, in the event loop that first uses it; run `migrate_postgres` first."""
        # Loaded only for PostgreSQL: the asyncio extension (and greenlet) is 7 MiB a process.
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(postgres_url(url), pool_size=10, max_overflow=10,
                                     pool_pre_ping=True)
        return cls(None, engine)

    async def close(self) -> None:
        self._pool.shutdown(wait=True)
        for conn in self._held:
            with contextlib.suppress(Exception):
                conn.close()
        self._held.clear()
        if self.engine is not None:
            self.engine.dispose()
        if self.async_engine is not None:
            await self.async_engine.dispose()

    # -- plumbing ------------------------------------------------------------------------
    async def _read(self, fn: Callable[[Connection], T], *, inline: bool = False) -> T:
        """A read in one transaction. `inline` runs it on the event loop itself: for lookups
        by key, one statement each, which take microseconds in SQLite, while handing them to
        a thread and back cost about 0.3 ms (measured). The loop never waits on a lock for
        long: a locked database sends the read to the thread pool after all."""
        if self.async_engine is not None:
            async with self.async_engine.connect() as conn, conn.begin():
                return await conn.run_sync(fn)
        if inline:
            try:
                return self._read_here(fn, patience_ms=100)
            except sa.exc.OperationalError as exc:
                if "locked" not in str(exc.orig).lower():
                    raise
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._read_here, fn)

    def _read_here(self, fn: Callable[[Connection], T], patience_ms: int | None = None) -> T:
        """On a pool thread: `fn` in a transaction. On the loop (`patience_ms` set): `fn` is
        one statement, run in SQLite's own implicit transaction (an explicit BEGIN and COMMIT
        were a third of a blob HEAD)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            assert self.engine is not None
            conn = self.engine.connect()
            if patience_ms is not None:
                conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                    f"PRAGMA busy_timeout={int(patience_ms)}")
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self._local.conn = conn
            self._held.append(conn)
        if patience_ms is not None:
            return fn(conn)
        with conn.begin():
            return fn(conn)

    async def _write(self, fn: Callable[[Connection], T], *, durable: bool = True) -> T:
        """`durable=False` is for the state of uploads in flight, whose bytes are not synced
        before the upload completes either: SQLite then commits without waiting for the disk
        (the next durable commit carries it along). A power cut may forget such a record, and
        the client starts its upload again; it never corrupts anything or loses a blob."""
        if self.async_engine is not None:
            return await self._write_async(fn)
        return await self._group.submit(fn, durable)  # type: ignore[no-any-return]

    async def _write_async(self, fn: Callable[[Connection], T]) -> T:
        assert self.async_engine is not None
        for attempt in range(8):
            try:
                async with self.async_engine.connect() as conn:
                    conn = await conn.execution_options(isolation_level="SERIALIZABLE")
                    async with conn.begin():
                        return await conn.run_sync(fn)
            except sa.exc.DBAPIError as exc:
                state = getattr(exc.orig, "sqlstate", None) or getattr(
                    getattr(exc.orig, "__cause__", None), "sqlstate", None)
                if state not in _RETRYABLE or attempt == 7:
                    raise
                # Another replica's transaction touched the same rows: ours runs again.
                self._repo_ids.clear()
                await asyncio.sleep(0.005 * (2**attempt))
        raise AssertionError("unreachable")

    def _writer_turn(self) -> contextlib.AbstractContextManager[object]:
        """Writers (threads and worker processes) queue for their turn before BEGIN IMMEDIATE."""
        return self._turns.turn() if self._turns is not None else contextlib.nullcontext()

    def _run_batch(self, batch: list[Job]) -> None:
        """Every queued write in one transaction, committed once: durably if any of them asked
        for it. Should one of several fail, the transaction is rolled back and each write runs
        again in a transaction of its own, so it fails alone (savepoints around every write
        cost a tenth of a small push; failures are rare)."""
        self._run_together(batch)
        if len(batch) > 1 and any(not job.outcome[0] for job in batch):  # type: ignore[index]
            for job in batch:
                job.outcome = None
                self._run_together([job])

    def _run_together(self, batch: list[Job]) -> None:
        assert self.engine is not None
        durable = any(job.durable for job in batch)
        try:
            with self._writer_turn():
                # One write connection kept per thread, as for reads: a checkout, its events
                # and the reset on return were a fifth of a small push's work.
                conn = getattr(self._local, "writer", None)
                if conn is None:
                    conn = self.engine.connect().execution_options(dockyard_write=True)
                    self._local.writer = conn
                    self._held.append(conn)
                raw = conn.connection.driver_connection
                assert raw is not None
                if not durable:
                    raw.execute("PRAGMA synchronous=NORMAL")
                try:
                    with conn.begin():
                        for job in batch:
                            job.outcome = (True, job.fn(conn))
                finally:
                    if raw.in_transaction:  # a failed COMMIT can leave it open
                        with contextlib.suppress(Exception):
                            raw.execute("ROLLBACK")
                    if not durable:
                        raw.execute("PRAGMA synchronous=FULL")
        except Exception as exc:
            # Nothing was committed: whatever the writes returned is void, and a repository
            # id one of them read (perhaps created in this transaction) may be a lie. After a
            # database error the connection starts afresh, whatever state it was left in.
            self._repo_ids.clear()
            writer = getattr(self._local, "writer", None)
            if writer is not None and isinstance(exc, sa.exc.DBAPIError):
                self._local.writer = None
                with contextlib.suppress(Exception):
                    self._held.remove(writer)
                with contextlib.suppress(Exception):
                    writer.invalidate()
            if isinstance(exc, sa.exc.OperationalError) and "full" in str(exc.orig).lower():
                exc = StorageFullError(str(exc.orig))  # SQLITE_FULL; rolled back
            for job in batch:
                job.outcome = (False, exc)

    def _insert_ignore(self, conn: Connection, table: sa.Table, **values: Any) -> None:
        stmt = _prepared(conn, ("insert-ignore", table.name, *values),
                         lambda d: d.insert(table).on_conflict_do_nothing())
        direct.execute(conn, stmt, values)

    _REPO_ID = sa.select(t.repositories.c.id).where(t.repositories.c.name == sa.bindparam("name"))

    def _repo_id(self, conn: Connection, name: str, *, create: bool) -> int | None:
        cached = self._repo_ids.get(name)
        if cached is not None:
            return cached
        row = direct.execute(conn, self._REPO_ID, {"name": name}).first()
        if row is not None:
            # Only ids read back are cached, and the cache is emptied whenever a write
            # transaction fails: a row made in a transaction that rolls back (a full disk,
            # say; or by an earlier write of the same group commit) would be a lie.
            self._repo_ids[name] = row[0]
            return row[0]
        if not create:
            return None
        self._insert_ignore(conn, t.repositories, name=name, created_at=time.time())
        return direct.execute(conn, self._REPO_ID, {"name": name}).scalar_one()

    # -- blobs ---------------------------------------------------------------------------
    _BLOB_SIZE = sa.select(t.blobs.c.size).where(t.blobs.c.digest == sa.bindparam("digest"))
    _LINKED_BLOB_SIZE = (
        sa.select(t.blobs.c.size)
        .select_from(t.repository_blobs.join(t.blobs))
        .join(t.repositories, t.repositories.c.id == t.repository_blobs.c.repository_id)
        .where(t.repositories.c.name == sa.bindparam("repository"),
               t.repository_blobs.c.digest == sa.bindparam("digest"))
    )

    async def blob_size(self, digest: str) -> int | None:
        return await self._read(
            lambda conn: direct.execute(conn, self._BLOB_SIZE, {"digest": digest}).scalar(),
            inline=True)

    async def linked_blob_size(self, repository: str, digest: str) -> int | None:
        return await self._read(lambda conn: direct.execute(
            conn, self._LINKED_BLOB_SIZE, {"repository": repository, "digest": digest}).scalar(),
            inline=True)

    def _link(self, conn: Connection, repository: str, digest: str, size: int) -> None:
        now = time.time()
        repo_id = self._repo_id(conn, repository, create=True)
        assert repo_id is not None
        self._first_content(conn, repo_id)
        self._insert_ignore(conn, t.blobs, digest=digest, size=size, created_at=now)
        self._insert_ignore(
            conn, t.repository_blobs, repository_id=repo_id, digest=digest, created_at=now
        )

    _HAS_CONTENT = sa.select(sa.or_(
        sa.exists().where(t.manifests.c.repository_id == sa.bindparam("repo_id")),
        sa.exists().where(t.repository_blobs.c.repository_id == sa.bindparam("repo_id")),
    ))

    def _first_content(self, conn: Connection, repo_id: int) -> None:
        """Called before content is added: the catalog changes if the repository had none."""
        if not direct.execute(conn, self._HAS_CONTENT, {"repo_id": repo_id}).scalar():
            self._catalog_changed(conn)

    def _catalog_changed(self, conn: Connection) -> None:
        _bump_version(conn, t.listing_versions, "name", "catalog")

    async def link_blob(self, repository: str, digest: str, size: int) -> None:
        await self._write(lambda conn: self._link(conn, repository, digest, size))

    async def complete_upload(self, upload_id: str, repository: str, digest: str,
                              size: int) -> None:
        def fn(conn: Connection) -> None:
            self._link(conn, repository, digest, size)
            direct.execute(conn, self._DELETE_UPLOAD, {"upload_id": upload_id})

        await self._write(fn)

    async def unlink_blob(self, repository: str, digest: str) -> bool:
        def fn(conn: Connection) -> bool:
            repo_id = self._repo_id(conn, repository, create=False)
            if repo_id is None:
                return False
            result = conn.execute(
                sa.delete(t.repository_blobs).where(
                    t.repository_blobs.c.repository_id == repo_id,
                    t.repository_blobs.c.digest == digest,
                )
            )
            if result.rowcount:
                self._catalog_changed(conn)  # perhaps its last content
            return result.rowcount > 0

        return await self._write(fn)

    async def repositories_linking(self, digest: str, limit: int) -> list[str]:
        def fn(conn: Connection) -> list[str]:
            return list(
                conn.execute(
                    sa.select(t.repositories.c.name)
                    .join(
                        t.repository_blobs,
                        t.repositories.c.id == t.repository_blobs.c.repository_id,
                    )
                    .where(t.repository_blobs.c.digest == digest)
                    .order_by(t.repositories.c.name)
                    .limit(limit)
                ).scalars()
            )

        return await self._read(fn)

    # -- uploads -------------------------------------------------------------------------
    # Built once, as the lookups are: a push's bookkeeping was mostly statement building.
    _INSERT_UPLOAD = sa.insert(t.uploads)
    _DELETE_UPLOAD = sa.delete(t.uploads).where(t.uploads.c.id == sa.bindparam("upload_id"))
    _ADVANCE_UPLOAD = (
        sa.update(t.uploads)
        .where(t.uploads.c.id == sa.bindparam("upload_id"),
               t.uploads.c.size == sa.bindparam("old_size"))
        .values(size=sa.bindparam("new_size"), updated_at=sa.bindparam("now"),
                pieces=sa.bindparam("pieces"))
    )

    async def create_upload(self, upload_id: str, repository: str, now: float) -> None:
        def fn(conn: Connection) -> None:
            repo_id = self._repo_id(conn, repository, create=True)
            direct.execute(conn, self._INSERT_UPLOAD, {
                "id": upload_id, "repository_id": repo_id, "size": 0, "created_at": now,
                "updated_at": now})

        await self._write(fn, durable=False)

    _UPLOADS = sa.select(
        t.uploads.c.id, t.repositories.c.name, t.uploads.c.size, t.uploads.c.created_at,
        t.uploads.c.updated_at, t.uploads.c.pieces,
    ).join(t.repositories)
    _GET_UPLOAD = _UPLOADS.where(t.uploads.c.id == sa.bindparam("upload_id"))

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        def fn(conn: Connection) -> UploadRecord | None:
            row = direct.execute(conn, self._GET_UPLOAD, {"upload_id": upload_id}).first()
            return UploadRecord(*row) if row else None

        return await self._read(fn, inline=True)

    async def advance_upload(self, upload_id: str, old: int, new: int, now: float,
                             pieces: str | None = None) -> bool:
        def fn(conn: Connection) -> bool:
            result = direct.execute(conn, self._ADVANCE_UPLOAD, {
                "upload_id": upload_id, "old_size": old, "new_size": new, "now": now,
                "pieces": pieces})
            return result.rowcount == 1

        return await self._write(fn, durable=False)

    async def delete_upload(self, upload_id: str) -> None:
        await self._write(
            lambda conn: direct.execute(conn, self._DELETE_UPLOAD, {"upload_id": upload_id}),
            durable=False,
        )

    async def expired_uploads(self, before: float) -> list[UploadRecord]:
        def fn(conn: Connection) -> list[UploadRecord]:
            rows = conn.execute(self._UPLOADS.where(t.uploads.c.updated_at < before))
            return [UploadRecord(*row) for row in rows]

        return await self._read(fn)

    # -- manifests and tags --------------------------------------------------------------
    async def put_manifest(
        self,
        repository: str,
        record: ManifestRecord,
        references: list[Reference],
        tags: list[str],
        *,
        children_required: bool = False,
    ) -> None:
        children = [r.target for r in references if r.kind == "manifest"]

        def fn(conn: Connection) -> None:
            now = time.time()
            repo_id = self._repo_id(conn, repository, create=True)
            assert repo_id is not None
            if children_required and children:
                present = set(conn.execute(
                    sa.select(t.manifests.c.digest).where(
                        t.manifests.c.repository_id == repo_id,
                        t.manifests.c.digest.in_(children),
                    )
                ).scalars())
                missing = [d for d in children if d not in present]
                if missing:
                    raise ChildrenMissing(missing)
            self._first_content(conn, repo_id)
            self._insert_ignore(
                conn, t.blobs, digest=record.digest, size=record.size, created_at=now
            )
            self._insert_ignore(
                conn,
                t.manifests,
                repository_id=repo_id,
                digest=record.digest,
                media_type=record.media_type,
                size=record.size,
                artifact_type=record.artifact_type,
                subject=record.subject,
                annotations=json.dumps(record.annotations) if record.annotations else None,
                created_at=now,
            )
            for ref in references:
                self._insert_ignore(
                    conn,
                    t.manifest_references,
                    repository_id=repo_id,
                    manifest_digest=record.digest,
                    target_digest=ref.target,
                    kind=ref.kind,
                )
            for tag in tags:
                self._upsert_tag(conn, repo_id, tag, record.digest, now)
            if tags:
                self._tags_changed(conn, repo_id)

        await self._write(fn)

    def _tags_changed(self, conn: Connection, repo_id: int) -> None:
        _bump_version(conn, t.tag_versions, "repository_id", repo_id)

    def _upsert_tag(
        self, conn: Connection, repo_id: int, tag: str, digest: str, now: float
    ) -> None:
        def build(dialect: Any) -> sa.Executable:
            stmt = dialect.insert(t.tags)
            return stmt.on_conflict_do_update(
                index_elements=[t.tags.c.repository_id, t.tags.c.name],
                set_={"manifest_digest": stmt.excluded.manifest_digest,
                      "updated_at": stmt.excluded.updated_at},
            )

        direct.execute(conn, _prepared(conn, ("upsert-tag",), build), {
            "repository_id": repo_id, "name": tag, "manifest_digest": digest, "updated_at": now})

    _manifest_columns = (
        t.manifests.c.digest,
        t.manifests.c.media_type,
        t.manifests.c.size,
        t.manifests.c.artifact_type,
        t.manifests.c.subject,
        t.manifests.c.annotations,
        t.manifests.c.created_at,
    )

    @staticmethod
    def _record(row: Any) -> ManifestRecord:
        return ManifestRecord(
            digest=row[0],
            media_type=row[1],
            size=row[2],
            artifact_type=row[3],
            subject=row[4],
            annotations=json.loads(row[5]) if row[5] else {},
            created_at=row[6],
        )

    # The lookups of every pull, built once: building a Core statement per call (and its
    # cache key) was most of a manifest GET's time in py-spy.
    _GET_MANIFEST = (
        sa.select(*_manifest_columns)
        .join(t.repositories)
        .where(t.repositories.c.name == sa.bindparam("repository"),
               t.manifests.c.digest == sa.bindparam("digest"))
    )
    _RESOLVE_TAG = (
        sa.select(*_manifest_columns)
        .select_from(t.tags)
        .join(
            t.manifests,
            sa.and_(
                t.manifests.c.repository_id == t.tags.c.repository_id,
                t.manifests.c.digest == t.tags.c.manifest_digest,
            ),
        )
        .join(t.repositories, t.repositories.c.id == t.tags.c.repository_id)
        .where(t.repositories.c.name == sa.bindparam("repository"),
               t.tags.c.name == sa.bindparam("tag"))
    )

    async def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        def fn(conn: Connection) -> ManifestRecord | None:
            row = direct.execute(
                conn, self._GET_MANIFEST, {"repository": repository, "digest": digest}).first()
            return self._record(row) if row else None

        return await self._read(fn, inline=True)

    async def resolve_tag(self, repository: str, tag: str) -> ManifestRecord | None:
        def fn(conn: Connection) -> ManifestRecord | None:
            row = direct.execute(
                conn, self._RESOLVE_TAG, {"repository": repository, "tag": tag}).first()
            return self._record(row) if row else None

        return await self._read(fn, inline=True)

    async def missing_manifests(self, repository: str, digests: list[str]) -> list[str]:
        if not digests:
            return []

        def fn(conn: Connection) -> list[str]:
            found = set(
                conn.execute(
                    sa.select(t.manifests.c.digest)
                    .join(t.repositories)
                    .where(t.repositories.c.name == repository, t.manifests.c.digest.in_(digests))
                ).scalars()
            )
            return [d for d in digests if d not in found]

        return await self._read(fn)

    async def delete_manifest(
        self, repository: str, digest: str, *, unless_in_index: bool = False
    ) -> bool:
        def fn(conn: Connection) -> bool:
            repo_id = self._repo_id(conn, repository, create=False)
            if repo_id is None:
                return False
            if unless_in_index:
                self._refuse_if_in_index(conn, repo_id, digest)
            untagged = conn.execute(
                sa.delete(t.tags).where(
                    t.tags.c.repository_id == repo_id, t.tags.c.manifest_digest == digest
                )
            )
            if untagged.rowcount:
                self._tags_changed(conn, repo_id)
            conn.execute(
                sa.delete(t.manifest_references).where(
                    t.manifest_references.c.repository_id == repo_id,
                    t.manifest_references.c.manifest_digest == digest,
                )
            )
            result = conn.execute(
                sa.delete(t.manifests).where(
                    t.manifests.c.repository_id == repo_id, t.manifests.c.digest == digest
                )
            )
            if result.rowcount:
                self._catalog_changed(conn)  # perhaps its last content
            return result.rowcount > 0

        return await self._write(fn)

    def _refuse_if_in_index(self, conn: Connection, repo_id: int, digest: str) -> None:
        # Read in the deleting transaction: an index stored meanwhile is either seen here or
        # finds its child gone (`children_required`), never both missed.
        indexes = sorted(conn.execute(
            sa.select(t.manifest_references.c.manifest_digest).where(
                t.manifest_references.c.repository_id == repo_id,
                t.manifest_references.c.target_digest == digest,
                t.manifest_references.c.kind == "manifest",
                t.manifest_references.c.manifest_digest != digest,
            )
        ).scalars())
        if not indexes:
            return
        exists = conn.execute(
            sa.select(t.manifests.c.digest).where(
                t.manifests.c.repository_id == repo_id, t.manifests.c.digest == digest
            )
        ).first()
        if exists is not None:
            raise ManifestInUse(indexes)

    async def delete_tag(self, repository: str, tag: str) -> bool:
        def fn(conn: Connection) -> bool:
            repo_id = self._repo_id(conn, repository, create=False)
            if repo_id is None:
                return False
            result = conn.execute(
                sa.delete(t.tags).where(t.tags.c.repository_id == repo_id, t.tags.c.name == tag)
            )
            if result.rowcount:
                self._tags_changed(conn, repo_id)
            return result.rowcount > 0

        return await self._write(fn)

    async def repository_exists(self, repository: str) -> bool:
        def fn(conn: Connection) -> bool:
            return self._repo_id(conn, repository, create=False) is not None

        return await self._read(fn, inline=True)

    _TAGS_VERSION = (
        sa.select(t.repositories.c.id, t.tag_versions.c.version)
        .select_from(t.repositories.outerjoin(t.tag_versions))
        .where(t.repositories.c.name == sa.bindparam("repository"))
    )

    def _tags_version(self, conn: Connection, repository: str) -> int | None:
        row = direct.execute(conn, self._TAGS_VERSION, {"repository": repository}).first()
        return None if row is None else (row[1] or 0)

    async def tags_version(self, repository: str) -> int | None:
        return await self._read(lambda conn: self._tags_version(conn, repository), inline=True)

    async def all_tags(self, repository: str) -> tuple[int, list[str]] | None:
        def fn(conn: Connection) -> tuple[int, list[str]] | None:
            version = self._tags_version(conn, repository)
            if version is None:
                return None
            rows = conn.execute(
                sa.select(t.tags.c.name)
                .join(t.repositories, t.repositories.c.id == t.tags.c.repository_id)
                .where(t.repositories.c.name == repository)
                .order_by(t.tags.c.name)
            ).fetchall()
            return version, [row[0] for row in rows]

        return await self._read(fn)

    async def list_tags(self, repository: str, limit: int | None, last: str | None) -> list[str]:
        def fn(conn: Connection) -> list[str]:
            query = (
                sa.select(t.tags.c.name)
                .join(t.repositories, t.repositories.c.id == t.tags.c.repository_id)
                .where(t.repositories.c.name == repository)
                .order_by(t.tags.c.name)
            )
            if last is not None:
                query = query.where(t.tags.c.name > last)
            if limit is not None:
                query = query.limit(limit)
            return [row[0] for row in conn.execute(query).fetchall()]

        return await self._read(fn)

    def _catalog_query(self, limit: int | None, last: str | None) -> sa.Select:
        r = t.repositories
        has_content = sa.or_(
            sa.exists().where(t.manifests.c.repository_id == r.c.id),
            sa.exists().where(t.repository_blobs.c.repository_id == r.c.id),
        )
        query = sa.select(r.c.name).where(has_content).order_by(r.c.name)
        if last is not None:
            query = query.where(r.c.name > last)
        if limit is not None:
            query = query.limit(limit)
        return query

    async def list_repositories(self, limit: int | None, last: str | None) -> list[str]:
        return await self._read(lambda conn: [
            row[0] for row in conn.execute(self._catalog_query(limit, last)).fetchall()])

    _CATALOG_VERSION = sa.select(t.listing_versions.c.version).where(
        t.listing_versions.c.name == "catalog")

    def _catalog_version(self, conn: Connection) -> int:
        return conn.execute(self._CATALOG_VERSION).scalar() or 0

    async def catalog_version(self) -> int:
        return await self._read(self._catalog_version, inline=True)

    async def all_repositories(self) -> tuple[int, list[str]]:
        def fn(conn: Connection) -> tuple[int, list[str]]:
            version = self._catalog_version(conn)
            rows = conn.execute(self._catalog_query(None, None)).fetchall()
            return version, [row[0] for row in rows]

        return await self._read(fn)

    async def referrers(self, repository: str, subject: str) -> list[ManifestRecord]:
        def fn(conn: Connection) -> list[ManifestRecord]:
            rows = conn.execute(
                sa.select(*self._manifest_columns)
                .join(t.repositories)
                .where(t.repositories.c.name == repository, t.manifests.c.subject == subject)
                .order_by(t.manifests.c.created_at, t.manifests.c.digest)
            )
            return [self._record(row) for row in rows]

        return await self._read(fn)

    # -- pull-through cache --------------------------------------------------------------
    async def tag_checked_at(self, repository: str, tag: str) -> float | None:
        def fn(conn: Connection) -> float | None:
            return conn.execute(
                sa.select(t.cached_tags.c.checked_at)
                .join(t.repositories, t.repositories.c.id == t.cached_tags.c.repository_id)
                .where(t.repositories.c.name == repository, t.cached_tags.c.tag == tag)
            ).scalar()

        return await self._read(fn, inline=True)

    async def mark_tag_checked(self, repository: str, tag: str, now: float) -> None:
        def fn(conn: Connection) -> None:
            repo_id = self._repo_id(conn, repository, create=True)
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            stmt = dialect.insert(t.cached_tags).values(
                repository_id=repo_id, tag=tag, checked_at=now
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[t.cached_tags.c.repository_id, t.cached_tags.c.tag],
                    set_={"checked_at": now},
                )
            )

        await self._write(fn)

    @staticmethod
    def _under(prefixes: list[str]) -> sa.ColumnElement[bool]:
        name = t.repositories.c.name
        return sa.or_(sa.false(), *(
            sa.func.substr(name, 1, len(p) + 1) == p + "/" for p in prefixes))

    def _cached_only_blobs(self, prefixes: list[str]) -> sa.Select:
        """Digests linked by cached repositories and by no other repository."""
        rb, r = t.repository_blobs, t.repositories
        other = (sa.select(rb.c.digest).join(r, r.c.id == rb.c.repository_id)
                 .where(sa.not_(self._under(prefixes))))
        return (sa.select(rb.c.digest).join(r, r.c.id == rb.c.repository_id)
                .where(self._under(prefixes), rb.c.digest.not_in(other)).distinct())

    async def cache_usage(self, prefixes: list[str]) -> CacheUsage:
        def fn(conn: Connection) -> CacheUsage:
            r = t.repositories
            repos = conn.execute(sa.select(sa.func.count()).select_from(r)
                                 .where(self._under(prefixes))).scalar() or 0
            manifests = conn.execute(
                sa.select(sa.func.count()).select_from(t.manifests)
                .join(r, r.c.id == t.manifests.c.repository_id)
                .where(self._under(prefixes))).scalar() or 0
            digests = self._cached_only_blobs(prefixes).subquery()
            row = conn.execute(
                sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.blobs.c.size), 0))
                .where(t.blobs.c.digest.in_(sa.select(digests.c.digest)))).one()
            return CacheUsage(int(repos), int(manifests), int(row[0]), int(row[1]))

        return await self._read(fn)

    async def cached_manifests(self, prefixes: list[str]) -> list[tuple[str, str]]:
        def fn(conn: Connection) -> list[tuple[str, str]]:
            rows = conn.execute(
                sa.select(t.repositories.c.name, t.manifests.c.digest)
                .join(t.repositories).where(self._under(prefixes)))
            return [(row[0], row[1]) for row in rows]

        return await self._read(fn)

    def _needed(self) -> sa.Subquery:
        return sa.union(
            sa.select(t.manifest_references.c.target_digest.label("digest")),
            sa.select(t.manifests.c.digest.label("digest")),
        ).subquery()

    def _unneeded_cached(self, conn: Connection, prefixes: list[str]) -> set[str]:
        needed = self._needed()
        candidates = self._cached_only_blobs(prefixes).subquery()
        cached = set(conn.execute(
            sa.select(candidates.c.digest)
            .where(candidates.c.digest.not_in(sa.select(needed.c.digest)))).scalars())
        # Bytes of manifests evicted from the cache: no manifest row and no link any more.
        orphans = set(conn.execute(
            sa.select(t.blobs.c.digest).where(
                t.blobs.c.digest.not_in(sa.select(needed.c.digest)),
                t.blobs.c.digest.not_in(sa.select(t.repository_blobs.c.digest)))).scalars())
        return cached | orphans

    async def unneeded_cached_blobs(self, prefixes: list[str]) -> list[str]:
        return sorted(await self._read(lambda conn: self._unneeded_cached(conn, prefixes)))

    async def forget_blobs(self, prefixes: list[str], digests: list[str]) -> list[str]:
        def fn(conn: Connection) -> list[str]:
            # Checked again inside the write transaction: anything linked or needed since
            # the candidates were chosen stays.
            gone = sorted(self._unneeded_cached(conn, prefixes) & set(digests))
            for start in range(0, len(gone), 500):
                batch = gone[start:start + 500]
                conn.execute(sa.delete(t.repository_blobs).where(
                    t.repository_blobs.c.digest.in_(batch)))
                conn.execute(sa.delete(t.blobs).where(t.blobs.c.digest.in_(batch)))
            if gone:
                self._catalog_changed(conn)
            return gone

        return await self._write(fn)

    # -- consistency checks --------------------------------------------------------------
    async def content_graph(self) -> ContentGraph:
        repos = t.repositories

        def fn(conn: Connection) -> ContentGraph:
            def rows(table: sa.Table, *columns: sa.Column) -> list[tuple[str, ...]]:
                query = sa.select(repos.c.name, *columns).join(
                    repos, repos.c.id == table.c.repository_id)
                return [tuple(row) for row in conn.execute(query.order_by(*query.selected_columns))]

            return ContentGraph(
                links=rows(t.repository_blobs, t.repository_blobs.c.digest),
                manifests=rows(t.manifests, t.manifests.c.digest),
                references=rows(t.manifest_references, t.manifest_references.c.manifest_digest,
                                t.manifest_references.c.target_digest,
                                t.manifest_references.c.kind),
                tags=rows(t.tags, t.tags.c.name, t.tags.c.manifest_digest),
            )

        return await self._read(fn)

    async def forget_blob_records(self, digests: list[str]) -> None:
        def fn(conn: Connection) -> None:
            for start in range(0, len(digests), 500):
                batch = digests[start:start + 500]
                conn.execute(sa.delete(t.repository_blobs).where(
                    t.repository_blobs.c.digest.in_(batch)))
                conn.execute(sa.delete(t.blobs).where(t.blobs.c.digest.in_(batch)))
            if digests:
                self._catalog_changed(conn)

        await self._write(fn)

    # -- moving to another database ------------------------------------------------------
    # Parents before children, so foreign keys hold at every insert.
    TABLE_ORDER = ("repositories", "blobs", "repository_blobs", "manifests",
                   "manifest_references", "tags", "accounts", "memberships", "access_tokens",
                   "repository_settings", "cached_tags", "secrets", "tag_versions",
                   "listing_versions")

    async def all_blob_digests(self) -> list[str]:
        return await self._read(lambda conn: list(conn.execute(
            sa.select(t.blobs.c.digest).order_by(t.blobs.c.digest)).scalars()))

    async def export_rows(self) -> dict[str, list[dict[str, Any]]]:
        def fn(conn: Connection) -> dict[str, list[dict[str, Any]]]:
            return {name: [dict(row._mapping)
                           for row in conn.execute(sa.select(t.metadata.tables[name]))]
                    for name in self.TABLE_ORDER}

        return await self._read(fn)

    async def import_rows(self, rows: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        """All rows in one transaction, keys kept; refuses a database that holds data."""

        def fn(conn: Connection) -> dict[str, int]:
            for name in self.TABLE_ORDER:
                table = t.metadata.tables[name]
                if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar():
                    raise ValueError(f"the target database already has {name}; "
                                     "migrate into an empty one")
            for name in self.TABLE_ORDER:
                if rows.get(name):
                    conn.execute(sa.insert(t.metadata.tables[name]), rows[name])
            if conn.dialect.name == "postgresql":
                for name in ("repositories", "accounts"):
                    conn.exec_driver_sql(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)")
            self._repo_ids.clear()
            return {name: len(rows.get(name, [])) for name in self.TABLE_ORDER}

        return await self._write(fn)

    # -- shared secrets ------------------------------------------------------------------
    @property
    def shared(self) -> bool:
        """True when several replicas may use this database at once."""
        return self.async_engine is not None

    async def secret(self, name: str, make: Callable[[], str]) -> str:
        """The secret called `name`; the first caller's `make()` wins any race."""

        def fn(conn: Connection) -> str:
            self._insert_ignore(conn, t.secrets, name=name, value=make(),
                                created_at=time.time())
            return conn.execute(
                sa.select(t.secrets.c.value).where(t.secrets.c.name == name)).scalar_one()

        return await self._write(fn)

