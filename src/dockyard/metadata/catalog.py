"""Listings: the catalog of repositories with content, each repository's tags, and their versions.

A listing's version moves on in the transaction that changes it (`statements`), so a server
process that cached a listing checks it is current with one primary-key read, and a listing
read whole comes with the version it was read at.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.statements import CATALOG_VERSION, RepositoryIds

# A repository without content is unknown, as the catalog has it: one deleted whole keeps its
# row (`repository_removal`) but answers NAME_UNKNOWN. Each test is a primary-key prefix lookup.
TAGS_VERSION = (
    sa.select(t.repositories.c.id, t.tag_versions.c.version)
    .select_from(t.repositories.outerjoin(t.tag_versions))
    .where(
        t.repositories.c.name == sa.bindparam("repository"),
        sa.or_(
            sa.exists().where(t.manifests.c.repository_id == t.repositories.c.id),
            sa.exists().where(t.repository_blobs.c.repository_id == t.repositories.c.id),
        ),
    )
)
CATALOG_VERSION_ROW = sa.select(t.listing_versions.c.version).where(
    t.listing_versions.c.name == CATALOG_VERSION
)


def repository_exists(conn: Connection, ids: RepositoryIds, repository: str) -> bool:
    return ids.lookup(conn, repository) is not None


def tags_version(conn: Connection, repository: str) -> int | None:
    row = direct.execute(conn, TAGS_VERSION, {"repository": repository}).first()
    return None if row is None else (row[1] or 0)


def _tags_query(repository: str) -> sa.Select[Any]:
    return (
        sa.select(t.tags.c.name)
        .join(t.repositories, t.repositories.c.id == t.tags.c.repository_id)
        .where(t.repositories.c.name == repository)
        .order_by(t.tags.c.name)
    )


def all_tags(conn: Connection, repository: str) -> tuple[int, list[str]] | None:
    version = tags_version(conn, repository)
    if version is None:
        return None
    return version, list(conn.execute(_tags_query(repository)).scalars())


def list_tags(conn: Connection, repository: str, limit: int | None, last: str | None) -> list[str]:
    query = _tags_query(repository)
    if last is not None:
        query = query.where(t.tags.c.name > last)
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query).scalars())


def _catalog_query(limit: int | None, last: str | None) -> sa.Select[Any]:
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


def list_repositories(conn: Connection, limit: int | None, last: str | None) -> list[str]:
    return list(conn.execute(_catalog_query(limit, last)).scalars())


def catalog_version(conn: Connection) -> int:
    version: int | None = conn.execute(CATALOG_VERSION_ROW).scalar()
    return version or 0


def all_repositories(conn: Connection) -> tuple[int, list[str]]:
    return catalog_version(conn), list_repositories(conn, None, None)


def last_pushes(conn: Connection) -> dict[str, float]:
    """When each repository last had a manifest stored or a tag moved: the later of its
    newest manifest and its newest tag (a tag may move to a manifest stored long before)."""
    r = t.repositories
    found: dict[str, float] = {}
    for table, column in ((t.manifests, t.manifests.c.created_at), (t.tags, t.tags.c.updated_at)):
        query = (
            sa.select(r.c.name, sa.func.max(column))
            .join(table, table.c.repository_id == r.c.id)
            .group_by(r.c.name)
        )
        for name, at in conn.execute(query):
            if at is not None and at > found.get(name, 0.0):
                found[name] = float(at)
    return found


class SQLCatalog(SQLAggregate):
    async def repository_exists(self, repository: str) -> bool:
        return await self.runner.read(
            partial(repository_exists, ids=self.ids, repository=repository), inline=True
        )

    async def tags_version(self, repository: str) -> int | None:
        return await self.runner.read(partial(tags_version, repository=repository), inline=True)

    async def all_tags(self, repository: str) -> tuple[int, list[str]] | None:
        return await self.runner.read(partial(all_tags, repository=repository))

    async def list_tags(self, repository: str, limit: int | None, last: str | None) -> list[str]:
        return await self.runner.read(
            partial(list_tags, repository=repository, limit=limit, last=last)
        )

    async def list_repositories(self, limit: int | None, last: str | None) -> list[str]:
        return await self.runner.read(partial(list_repositories, limit=limit, last=last))

    async def catalog_version(self) -> int:
        return await self.runner.read(catalog_version, inline=True)

    async def all_repositories(self) -> tuple[int, list[str]]:
        return await self.runner.read(all_repositories)

    async def last_pushes(self) -> dict[str, float]:
        return await self.runner.read(last_pushes)
