"""What every aggregate's queries share: dialect-built statements, versions, repository ids.

Insert-or-ignore and upserts are spelled differently by SQLite and PostgreSQL; each is built once
per dialect and kept, since executing the same statement object again reuses its cache key and
compiled form.
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
    """Move a version on (the row is made at 1): what a process remembers compares it."""

    def build(dialect: Any) -> Any:
        stmt = dialect.insert(table).values({key: sa.bindparam("key"), "version": 1})
        return stmt.on_conflict_do_update(
            index_elements=[table.c[key]], set_={"version": table.c.version + 1}
        )

    direct.execute(conn, prepared(conn, ("bump-version", table.name), build), {"key": value})


# Whether the repository `repo_id` holds a manifest or a blob: what the catalog lists.
HAS_CONTENT = sa.select(
    sa.or_(
        sa.exists().where(t.manifests.c.repository_id == sa.bindparam("repo_id")),
        sa.exists().where(t.repository_blobs.c.repository_id == sa.bindparam("repo_id")),
    )
)

REPO_ID = sa.select(t.repositories.c.id).where(t.repositories.c.name == sa.bindparam("name"))


class RepositoryIds:
    """Repository ids by name, remembered once read: nearly every write starts with one."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def forget(self) -> None:
        """After a write transaction failed, or before it runs again: see `lookup`."""
        self._ids.clear()

    def remembered(self, name: str) -> int | None:
        """The id `lookup` read before, if it did (no statement)."""
        return self._ids.get(name)

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
