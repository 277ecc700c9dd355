"""The pull-through cache's index: when a cached tag was last checked, and what a prune may drop.

Cached repositories are those whose names lie under the configured upstream prefixes. A blob
is the cache's own when only cached repositories link it; it may go once no manifest anywhere
needs it either, which is checked again inside the transaction that drops its records.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.base import CacheUsage
from dockyard.metadata.blob_links import UNREFERENCED
from dockyard.metadata.statements import RepositoryIds, prepared


def tag_checked_at(conn: Connection, repository: str, tag: str) -> float | None:
    checked: float | None = conn.execute(
        sa.select(t.cached_tags.c.checked_at)
        .join(t.repositories, t.repositories.c.id == t.cached_tags.c.repository_id)
        .where(t.repositories.c.name == repository, t.cached_tags.c.tag == tag)
    ).scalar()
    return checked


def _mark_checked_statement(dialect: Any) -> Any:
    stmt = dialect.insert(t.cached_tags)
    return stmt.on_conflict_do_update(
        index_elements=[t.cached_tags.c.repository_id, t.cached_tags.c.tag],
        set_={"checked_at": stmt.excluded.checked_at},
    )


def mark_tag_checked(
    conn: Connection, ids: RepositoryIds, repository: str, tag: str, now: float
) -> None:
    repo_id = ids.ensure(conn, repository)
    conn.execute(
        prepared(conn, ("mark-tag-checked",), _mark_checked_statement),
        {"repository_id": repo_id, "tag": tag, "checked_at": now},
    )


def under(prefixes: list[str]) -> sa.ColumnElement[bool]:
    """Repositories whose names lie under one of `prefixes`."""
    name = t.repositories.c.name
    return sa.or_(sa.false(), *(sa.func.substr(name, 1, len(p) + 1) == p + "/" for p in prefixes))


def cached_only_blobs(prefixes: list[str]) -> sa.Select[Any]:
    """Digests linked by cached repositories and by no other repository."""
    rb, r = t.repository_blobs, t.repositories
    other = (
        sa.select(rb.c.digest).join(r, r.c.id == rb.c.repository_id).where(sa.not_(under(prefixes)))
    )
    return (
        sa.select(rb.c.digest)
        .join(r, r.c.id == rb.c.repository_id)
        .where(under(prefixes), rb.c.digest.not_in(other))
        .distinct()
    )


def cache_usage(conn: Connection, prefixes: list[str]) -> CacheUsage:
    r = t.repositories
    repos = (
        conn.execute(sa.select(sa.func.count()).select_from(r).where(under(prefixes))).scalar() or 0
    )
    manifests = (
        conn.execute(
            sa.select(sa.func.count())
            .select_from(t.manifests)
            .join(r, r.c.id == t.manifests.c.repository_id)
            .where(under(prefixes))
        ).scalar()
        or 0
    )
    digests = cached_only_blobs(prefixes).subquery()
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.blobs.c.size), 0)).where(
            t.blobs.c.digest.in_(sa.select(digests.c.digest))
        )
    ).one()
    return CacheUsage(int(repos), int(manifests), int(row[0]), int(row[1]))


def cached_manifests(conn: Connection, prefixes: list[str]) -> list[tuple[str, str]]:
    rows = conn.execute(
        sa.select(t.repositories.c.name, t.manifests.c.digest)
        .join(t.repositories)
        .where(under(prefixes))
    )
    return [(row[0], row[1]) for row in rows]


def _needed() -> sa.Subquery:
    return sa.union(
        sa.select(t.manifest_references.c.target_digest.label("digest")),
        sa.select(t.manifests.c.digest.label("digest")),
    ).subquery()


def unneeded_cached(conn: Connection, prefixes: list[str]) -> set[str]:
    needed = _needed()
    candidates = cached_only_blobs(prefixes).subquery()
    cached = set(
        conn.execute(
            sa.select(candidates.c.digest).where(
                candidates.c.digest.not_in(sa.select(needed.c.digest))
            )
        ).scalars()
    )
    # Bytes of manifests evicted from the cache: no manifest row and no link any more.
    orphans = set(conn.execute(UNREFERENCED).scalars())
    return cached | orphans


def unneeded_cached_blobs(conn: Connection, prefixes: list[str]) -> list[str]:
    return sorted(unneeded_cached(conn, prefixes))


def forget_blobs(conn: Connection, prefixes: list[str], digests: list[str]) -> list[str]:
    # Checked again inside the write transaction: anything linked or needed since the
    # candidates were chosen stays.
    gone = sorted(unneeded_cached(conn, prefixes) & set(digests))
    for start in range(0, len(gone), 500):
        batch = gone[start : start + 500]
        conn.execute(sa.delete(t.repository_blobs).where(t.repository_blobs.c.digest.in_(batch)))
        conn.execute(sa.delete(t.blobs).where(t.blobs.c.digest.in_(batch)))
    return gone


class SQLCacheIndex(SQLAggregate):
    async def tag_checked_at(self, repository: str, tag: str) -> float | None:
        return await self.runner.read(
            partial(tag_checked_at, repository=repository, tag=tag), inline=True
        )

    async def mark_tag_checked(self, repository: str, tag: str, now: float) -> None:
        await self.runner.write(
            partial(mark_tag_checked, ids=self.ids, repository=repository, tag=tag, now=now)
        )

    async def cache_usage(self, prefixes: list[str]) -> CacheUsage:
        return await self.runner.read(partial(cache_usage, prefixes=prefixes))

    async def cached_manifests(self, prefixes: list[str]) -> list[tuple[str, str]]:
        return await self.runner.read(partial(cached_manifests, prefixes=prefixes))

    async def unneeded_cached_blobs(self, prefixes: list[str]) -> list[str]:
        return await self.runner.read(partial(unneeded_cached_blobs, prefixes=prefixes))

    async def forget_blobs(self, prefixes: list[str], digests: list[str]) -> list[str]:
        return await self.runner.write(partial(forget_blobs, prefixes=prefixes, digests=digests))
