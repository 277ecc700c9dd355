"""Tags a page at a time, for a repository's page: filtered, newest push first, with records.

A repository may hold thousands of tags; a page reads one count and one page of rows, each
joined to its manifest's record, and never the rest. The manifests a page's indexes name are
read by digest in one statement (`manifests_by_digest`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.base import ManifestRecord, PagedTag, TagChange, TagPage
from dockyard.metadata.manifests import MANIFEST_COLUMNS, manifest_record
from dockyard.metadata.statements import RepositoryIds

_JOINED = t.tags.join(
    t.manifests,
    sa.and_(
        t.manifests.c.repository_id == t.tags.c.repository_id,
        t.manifests.c.digest == t.tags.c.manifest_digest,
    ),
)


def _matching(repo_id: int, contains: str) -> list[Any]:
    conditions: list[Any] = [t.tags.c.repository_id == repo_id]
    if contains:
        # Lower-cased on both sides: SQLite's LIKE ignores ASCII case and PostgreSQL's does
        # not, and a filter must find the same tags on either.
        conditions.append(sa.func.lower(t.tags.c.name).contains(contains.lower(), autoescape=True))
    return conditions


def tag_page(
    conn: Connection, ids: RepositoryIds, repository: str, contains: str, offset: int, limit: int
) -> TagPage | None:
    repo_id = ids.lookup(conn, repository)
    if repo_id is None:
        return None
    conditions = _matching(repo_id, contains)
    total = conn.execute(
        sa.select(sa.func.count()).select_from(t.tags).where(*conditions)
    ).scalar_one()
    rows = conn.execute(
        sa.select(t.tags.c.name, t.tags.c.updated_at, *MANIFEST_COLUMNS)
        .select_from(_JOINED)
        .where(*conditions)
        .order_by(t.tags.c.updated_at.desc(), t.tags.c.name)
        .offset(offset)
        .limit(limit)
    )
    tags = [PagedTag(row[0], row[1], manifest_record(row[2:])) for row in rows]
    last = conn.execute(
        sa.select(sa.func.max(t.tags.c.updated_at)).where(t.tags.c.repository_id == repo_id)
    ).scalar()
    return TagPage(total, tags, last)


def tags_in_order(
    conn: Connection, ids: RepositoryIds, repository: str, last: str | None, limit: int
) -> list[PagedTag] | None:
    """Tags after `last` in byte order (the order of `/tags/list`), with their records."""
    repo_id = ids.lookup(conn, repository)
    if repo_id is None:
        return None
    conditions: list[Any] = [t.tags.c.repository_id == repo_id]
    if last is not None:
        conditions.append(t.tags.c.name > last)
    rows = conn.execute(
        sa.select(t.tags.c.name, t.tags.c.updated_at, *MANIFEST_COLUMNS)
        .select_from(_JOINED)
        .where(*conditions)
        .order_by(t.tags.c.name)
        .limit(limit)
    )
    return [PagedTag(row[0], row[1], manifest_record(row[2:])) for row in rows]


def tag_history(conn: Connection, repository: str, tag: str) -> list[TagChange]:
    rows = conn.execute(
        sa.select(t.tag_history.c.digest, t.tag_history.c.changed_at)
        .where(t.tag_history.c.repository == repository, t.tag_history.c.tag == tag)
        .order_by(t.tag_history.c.id.desc())
    )
    return [TagChange(row[0], row[1]) for row in rows]


def manifests_by_digest(
    conn: Connection, ids: RepositoryIds, repository: str, digests: list[str]
) -> dict[str, ManifestRecord]:
    repo_id = ids.lookup(conn, repository)
    if repo_id is None:
        return {}
    rows = conn.execute(
        sa.select(*MANIFEST_COLUMNS).where(
            t.manifests.c.repository_id == repo_id, t.manifests.c.digest.in_(digests)
        )
    )
    records = (manifest_record(row) for row in rows)
    return {record.digest: record for record in records}


def tags_of(conn: Connection, ids: RepositoryIds, repository: str, digest: str) -> list[str]:
    repo_id = ids.lookup(conn, repository)
    if repo_id is None:
        return []
    return list(
        conn.execute(
            sa.select(t.tags.c.name)
            .where(t.tags.c.repository_id == repo_id, t.tags.c.manifest_digest == digest)
            .order_by(t.tags.c.name)
        ).scalars()
    )


class SQLTagPages(SQLAggregate):
    async def tag_page(
        self, repository: str, contains: str, offset: int, limit: int
    ) -> TagPage | None:
        return await self.runner.read(
            partial(
                tag_page,
                ids=self.ids,
                repository=repository,
                contains=contains,
                offset=offset,
                limit=limit,
            )
        )

    async def tags_in_order(
        self, repository: str, last: str | None, limit: int
    ) -> list[PagedTag] | None:
        return await self.runner.read(
            partial(tags_in_order, ids=self.ids, repository=repository, last=last, limit=limit)
        )

    async def tag_history(self, repository: str, tag: str) -> list[TagChange]:
        return await self.runner.read(partial(tag_history, repository=repository, tag=tag))

    async def manifests_by_digest(
        self, repository: str, digests: list[str]
    ) -> dict[str, ManifestRecord]:
        if not digests:
            return {}
        return await self.runner.read(
            partial(manifests_by_digest, ids=self.ids, repository=repository, digests=digests)
        )

    async def tags_of(self, repository: str, digest: str) -> list[str]:
        return await self.runner.read(
            partial(tags_of, ids=self.ids, repository=repository, digest=digest)
        )
