"""Listings: the catalog of repositories with content, and each repository's tags.

Both are read a page at a time straight from an index in name order (keyset paging: names
after `last`, at most `limit` of them), so a page reads the rows it returns and not the rest,
however many the registry holds. No write moves a shared version row: concurrent pushes of new
repositories have nothing in common to conflict on. On SQLite a page read is remembered until
the next commit anywhere (`SQLiteRunner.read`'s `key`), as the lookups of a pull are: a client
walking a listing, or many clients asking the same page, cost one read per change.

On PostgreSQL a page comes back as one row holding one text, its names joined by a space
(which no repository or tag name holds), built by the server in the index's order: one value
to decode instead of a row object per name, about a third of the time for a page of 10,000.
"""

from __future__ import annotations

from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.runner import OneValue
from dockyard.metadata.statements import HAS_CONTENT, RepositoryIds

# Pages at most this long are read on SQLite's event loop (`SQLiteRunner.read`'s `inline`):
# an index range of a few hundred rows takes less than the hop to a thread and back.
INLINE_PAGE = 1_000


def _has_content(repo_id: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    """Each test a primary-key prefix lookup, made per repository row. Written as scalar
    subqueries, not EXISTS: PostgreSQL may answer an EXISTS under OR with a hash of the whole
    table (every link of the registry read for one page), never a `LIMIT 1` subquery."""

    def held_in(table: sa.Table) -> sa.ColumnElement[bool]:
        probe = sa.select(sa.literal(1)).where(table.c.repository_id == repo_id).limit(1)
        return probe.scalar_subquery().is_not(None)

    return sa.or_(held_in(t.manifests), held_in(t.repository_blobs))


# A repository without content is unknown, as the catalog has it: one deleted whole keeps its
# row (`repository_removal`) but answers NAME_UNKNOWN.
REPOSITORY_WITH_CONTENT = sa.select(t.repositories.c.id).where(
    t.repositories.c.name == sa.bindparam("repository"), _has_content(t.repositories.c.id)
)
# Names sort bytewise on both databases (`schema.NameText`) and are never empty, so "" as
# `last` is the start of the list, and one statement serves every page. The order is the
# primary key's (repository_id, name): the page is read where it starts, never sorted. (The
# repository's id is looked up apart: joined by name, PostgreSQL would sort every tag.)
TAGS_PAGE = (
    sa.select(t.tags.c.name)
    .where(
        t.tags.c.repository_id == sa.bindparam("repo_id"),
        t.tags.c.name > sa.bindparam("last"),
    )
    .order_by(t.tags.c.name)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)
# In the order of the unique index on `repositories.name`; a repository without content (an
# upload in progress, one deleted whole) is passed over.
CATALOG_PAGE = (
    sa.select(t.repositories.c.name)
    .where(t.repositories.c.name > sa.bindparam("last"), _has_content(t.repositories.c.id))
    .order_by(t.repositories.c.name)
    .limit(sa.bindparam("limit", type_=sa.Integer))
)


# Neither a tag (`core.names.TAG_PATTERN`) nor a repository name holds it.
SEPARATOR = " "


def joined(page: sa.Select[str]) -> sa.Select[str | None]:
    """`page`'s names as one text, in `page`'s order (NULL for none). Aggregated straight from
    the ordered subquery, with no join to reorder it in between, PostgreSQL keeps its order
    without sorting the names again (as an ORDER BY inside the aggregate would)."""
    rows = page.subquery()
    return sa.select(sa.func.string_agg(rows.c.name, sa.literal(SEPARATOR)))


def split(text: str | None) -> tuple[str, ...]:
    return tuple(text.split(SEPARATOR)) if text else ()


TAGS_JOINED = joined(TAGS_PAGE)
CATALOG_JOINED = joined(CATALOG_PAGE)
CATALOG_ALL = CATALOG_PAGE.limit(None)
CATALOG_ALL_JOINED = joined(CATALOG_ALL)


def page_names(
    conn: Connection,
    rows: sa.Select[str],
    one: sa.Select[str | None],
    params: dict[str, object],
) -> tuple[str, ...]:
    """The names `rows` selects: on PostgreSQL as one text (`one`, the same page joined)."""
    if conn.dialect.name == "postgresql":
        return split(conn.execute(one, params).scalar())
    return tuple(direct.execute(conn, rows, params).scalars())


def names_found(text: str | None) -> tuple[str, ...] | None:
    """A page's names, or None for none (which a tag page cannot answer alone)."""
    return split(text) if text else None


def repository_exists(conn: Connection, ids: RepositoryIds, repository: str) -> bool:
    return ids.lookup(conn, repository) is not None


def has_content(conn: Connection, repository: str) -> bool:
    return (
        direct.execute(conn, REPOSITORY_WITH_CONTENT, {"repository": repository}).first()
        is not None
    )


def tags_page(
    conn: Connection, ids: RepositoryIds, repository: str, limit: int, last: str | None
) -> tuple[str, ...] | None:
    """Up to `limit` tags after `last`, in order; None when the repository has no content.
    A tag names a manifest, so a page holding any is of a repository with content."""
    repo_id = ids.lookup(conn, repository)
    if repo_id is None:
        return None
    params = {"repo_id": repo_id, "last": last or "", "limit": limit}
    names = page_names(conn, TAGS_PAGE, TAGS_JOINED, params)
    if names or direct.execute(conn, HAS_CONTENT, {"repo_id": repo_id}).scalar():
        return names
    return None


def list_tags(conn: Connection, repository: str, limit: int | None, last: str | None) -> list[str]:
    """Every tag after `last` (or `limit` of them); [] for an unknown repository."""
    query = (
        sa.select(t.tags.c.name)
        .join(t.repositories, t.repositories.c.id == t.tags.c.repository_id)
        .where(t.repositories.c.name == repository, t.tags.c.name > (last or ""))
        .order_by(t.tags.c.name)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(conn.execute(query).scalars())


def list_repositories(conn: Connection, limit: int | None, last: str | None) -> tuple[str, ...]:
    """Up to `limit` (None: every) repository with content after `last`, in order."""
    if limit is None:
        return page_names(conn, CATALOG_ALL, CATALOG_ALL_JOINED, {"last": last or ""})
    return page_names(conn, CATALOG_PAGE, CATALOG_JOINED, {"last": last or "", "limit": limit})


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

    async def has_content(self, repository: str) -> bool:
        return await self.runner.read(partial(has_content, repository=repository), inline=True)

    async def tags_page(
        self, repository: str, limit: int, last: str | None
    ) -> tuple[str, ...] | None:
        params = {"last": last or "", "limit": limit}
        repo_id = self.ids.remembered(repository)
        return await self.runner.read(
            partial(tags_page, ids=self.ids, repository=repository, limit=limit, last=last),
            inline=limit <= INLINE_PAGE,
            key=("tags page", repository, limit, last or ""),
            sized=True,
            # The id known, a page is one statement; only an empty one needs the rest (whether
            # the repository has content at all).
            one=OneValue(TAGS_JOINED, {**params, "repo_id": repo_id}, names_found)
            if repo_id is not None
            else None,
        )

    async def list_tags(self, repository: str, limit: int | None, last: str | None) -> list[str]:
        return await self.runner.read(
            partial(list_tags, repository=repository, limit=limit, last=last)
        )

    async def list_repositories(self, limit: int | None, last: str | None) -> tuple[str, ...]:
        params: dict[str, object] = {"last": last or ""}
        joined = CATALOG_ALL_JOINED
        if limit is not None:
            params["limit"] = limit
            joined = CATALOG_JOINED
        return await self.runner.read(
            partial(list_repositories, limit=limit, last=last),
            inline=limit is not None and limit <= INLINE_PAGE,
            key=("catalog page", limit, last or ""),
            sized=True,
            one=OneValue(joined, params, split),
        )

    async def last_pushes(self) -> dict[str, float]:
        return await self.runner.read(last_pushes)
