"""What every aggregate's queries share: dialect-built statements, listing versions, repository ids.

Insert-or-ignore and upserts are spelled differently by SQLite and PostgreSQL; each is built once
per dialect and kept, since executing the same statement object again reuses its cache key and
compiled form. The listing versions move on in the transaction that changes a listing, so a
server process checks a cached listing with one primary-key read.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t

CATALOG_VERSION = "catalog"

_PREPARED: dict[tuple[str, tuple[str, ...]], Any] = {}


def prepared(conn: Connection, key: tuple[str, ...], build: Callable[[Any], Any]) -> Any:
    """The statement `build(dialect module)` makes for this connection's dialect, built once."""
    name = conn.dialect.name
    stmt = _PREPARED.get((name, key))
    if stmt is None:
        # The dialect's module is loaded by the first statement on it: a SQLite server never
        # imports PostgreSQL's (and its asyncpg dialect).
        module = importlib.import_module(
            "sqlalchemy.dialects." + ("postgresql" if name == "postgresql" else "sqlite")
        )
        stmt = _PREPARED[(name, key)] = build(module)
    return stmt


def insert_ignore(conn: Connection, table: sa.Table, **values: Any) -> None:
    """Insert the row unless one with the same key is there."""

    def build(dialect: Any) -> Any:
        return dialect.insert(table).on_conflict_do_nothing()

    direct.execute(conn, prepared(conn, ("insert-ignore", table.name, *values), build), values)


def bump_version(conn: Connection, table: sa.Table, key: str, value: object) -> None:
    """Move a listing's version on (the row is made at 1): caches of the listing compare it."""

    def build(dialect: Any) -> Any:
        stmt = dialect.insert(table).values({key: sa.bindparam("key"), "version": 1})
        return stmt.on_conflict_do_update(
            index_elements=[table.c[key]], set_={"version": table.c.version + 1}
        )

    direct.execute(conn, prepared(conn, ("bump-version", table.name), build), {"key": value})


def catalog_changed(conn: Connection) -> None:
    bump_version(conn, t.listing_versions, "name", CATALOG_VERSION)


def tags_changed(conn: Connection, repo_id: int) -> None:
    bump_version(conn, t.tag_versions, "repository_id", repo_id)


HAS_CONTENT = sa.select(
    sa.or_(
        sa.exists().where(t.manifests.c.repository_id == sa.bindparam("repo_id")),
        sa.exists().where(t.repository_blobs.c.repository_id == sa.bindparam("repo_id")),
    )
)


def first_content(conn: Connection, repo_id: int) -> None:
    """Called before content is added: the catalog changes if the repository had none."""
    if not direct.execute(conn, HAS_CONTENT, {"repo_id": repo_id}).scalar():
        catalog_changed(conn)


def content_removed(conn: Connection, repo_id: int) -> None:
    """Called after content is removed: the catalog changes if the repository has none left.
    Moving the catalog's version on at every removal would make its one row a point every
    deletion and collection of the registry conflicts on."""
    if not direct.execute(conn, HAS_CONTENT, {"repo_id": repo_id}).scalar():
        catalog_changed(conn)


REPO_ID = sa.select(t.repositories.c.id).where(t.repositories.c.name == sa.bindparam("name"))


class RepositoryIds:
    """Repository ids by name, remembered once read: nearly every write starts with one."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def forget(self) -> None:
        """After a write transaction failed, or before it runs again: see `lookup`."""
        self._ids.clear()

    def lookup(self, conn: Connection, name: str) -> int | None:
        cached = self._ids.get(name)
        if cached is not None:
            return cached
        row = direct.execute(conn, REPO_ID, {"name": name}).first()
        if row is None:
            return None
        # Only ids read back are remembered, and they are forgotten whenever a write
        # transaction fails: a row made in a transaction that rolls back (a full disk, say;
        # or by an earlier write of the same group commit) would be a lie.
        repo_id: int = row[0]
        self._ids[name] = repo_id
        return repo_id

    def ensure(self, conn: Connection, name: str) -> int:
        """The repository's id, made now if it has none yet (in the caller's transaction)."""
        found = self.lookup(conn, name)
        if found is not None:
            return found
        insert_ignore(conn, t.repositories, name=name, created_at=time.time())
        made: int = direct.execute(conn, REPO_ID, {"name": name}).scalar_one()
        return made
