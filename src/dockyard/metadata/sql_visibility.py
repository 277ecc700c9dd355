"""Repository visibility: each repository's own setting, and the facts an authorization needs."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from types import MappingProxyType

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.access import access_changed
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.audit import audited
from dockyard.metadata.base import AuditOf
from dockyard.metadata.statements import RepositoryIds

# Catalog pages at most this long have their visibilities read on the loop (as the page is).
INLINE_NAMES = 1_000

# Lookups made while authorizing requests: built once, run on the event loop (see
# `SQLiteRunner.read`).
GET_VISIBILITY = (
    sa.select(t.repository_settings.c.visibility)
    .join(t.repositories, t.repositories.c.id == t.repository_settings.c.repository_id)
    .where(t.repositories.c.name == sa.bindparam("repository"))
)
# Existence, the repository's own setting and its namespace's default, in one statement
# whatever the answer: a private repository costs what a missing one does.
VISIBILITY_FACTS = sa.select(
    sa.exists().where(t.repositories.c.name == sa.bindparam("repository")),
    GET_VISIBILITY.scalar_subquery(),
    sa.select(t.accounts.c.default_visibility)
    .where(t.accounts.c.name == sa.bindparam("namespace"))
    .scalar_subquery(),
)


def get_visibility(conn: Connection, repository: str) -> str | None:
    visibility: str | None = conn.execute(GET_VISIBILITY, {"repository": repository}).scalar()
    return visibility


def visibility_facts(conn: Connection, repository: str) -> tuple[bool, str | None, str | None]:
    row = direct.execute(
        conn,
        VISIBILITY_FACTS,
        {"repository": repository, "namespace": repository.split("/", 1)[0]},
    ).first()
    assert row is not None  # one row, whatever the repository
    return bool(row[0]), row[1], row[2]


def set_visibility(conn: Connection, ids: RepositoryIds, repository: str, visibility: str) -> None:
    repo_id = ids.ensure(conn, repository)
    conn.execute(
        sa.delete(t.repository_settings).where(t.repository_settings.c.repository_id == repo_id)
    )
    conn.execute(
        sa.insert(t.repository_settings).values(repository_id=repo_id, visibility=visibility)
    )
    # Every process forgets the token grants it confirmed: one made private is closed to
    # tokens minted while it was public within a second.
    access_changed(conn)


def visibilities(conn: Connection, repositories: tuple[str, ...]) -> Mapping[str, str | None]:
    """Every one of `repositories`, with its own setting or None (every name is in it, so
    its length is what it holds in memory, keys included)."""
    rows = conn.execute(
        sa.select(t.repositories.c.name, t.repository_settings.c.visibility)
        .join(t.repository_settings, t.repositories.c.id == t.repository_settings.c.repository_id)
        .where(t.repositories.c.name.in_(repositories))
    )
    found: dict[str, str | None] = dict.fromkeys(repositories)
    found.update((row.name, row.visibility) for row in rows)
    return MappingProxyType(found)


class SQLVisibility(SQLAggregate):
    async def get_visibility(self, repository: str) -> str | None:
        return await self.runner.read(
            partial(get_visibility, repository=repository),
            inline=True,
            key=("visibility", repository),
        )

    async def visibility_facts(self, repository: str) -> tuple[bool, str | None, str | None]:
        return await self.runner.read(
            partial(visibility_facts, repository=repository),
            inline=True,
            key=("visibility facts", repository),
        )

    async def set_visibility(
        self, repository: str, visibility: str, *, audit: AuditOf = None
    ) -> None:
        await self.runner.write(
            audited(
                partial(set_visibility, ids=self.ids, repository=repository, visibility=visibility),
                audit,
            )
        )

    async def visibilities(self, repositories: list[str]) -> Mapping[str, str | None]:
        if not repositories:
            return {}
        # A catalog page's names, asked again by every caller who lists that page: remembered
        # as the page is (until the next commit), and read on the loop as the page is.
        names = tuple(repositories)
        return await self.runner.read(
            partial(visibilities, repositories=names),
            inline=len(names) <= INLINE_NAMES,
            key=("visibilities", names),
            sized=True,
        )
