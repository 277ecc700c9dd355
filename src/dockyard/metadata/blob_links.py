"""Blobs and the repositories that link them: what a repository may serve, and what nothing needs.

A blob row records bytes the registry holds (its digest and size); a link makes it part of a
repository; a repository holding any link is in the catalog (`catalog`).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.quotas import namespace_of, refuse_over_quota
from dockyard.metadata.review_queue import enqueue
from dockyard.metadata.statements import (
    RepositoryIds,
    insert_ignore,
    prepared,
)

# Lookups of every pull, built once (see `direct`).
BLOB_SIZE = sa.select(t.blobs.c.size).where(t.blobs.c.digest == sa.bindparam("digest"))
LINKED_BLOB_SIZE = (
    sa.select(t.blobs.c.size)
    .select_from(t.repository_blobs.join(t.blobs))
    .join(t.repositories, t.repositories.c.id == t.repository_blobs.c.repository_id)
    .where(
        t.repositories.c.name == sa.bindparam("repository"),
        t.repository_blobs.c.digest == sa.bindparam("digest"),
    )
)


def _referenced_by(table: sa.Table, column: str) -> sa.Exists:
    return sa.exists().where(table.c[column] == t.blobs.c.digest)


# Each test is an indexed lookup of the blob's digest (ix_repository_blobs_digest,
# ix_manifests_digest, ix_manifest_references_target): one pass over `blobs`, nothing else.
UNREFERENCED = (
    sa.select(t.blobs.c.digest)
    .where(
        ~_referenced_by(t.repository_blobs, "digest"),
        ~_referenced_by(t.manifests, "digest"),
        ~_referenced_by(t.manifest_references, "target_digest"),
    )
    .order_by(t.blobs.c.digest)
)


def blob_size(conn: Connection, digest: str) -> int | None:
    size: int | None = direct.execute(conn, BLOB_SIZE, {"digest": digest}).scalar()
    return size


def linked_blob_size(conn: Connection, repository: str, digest: str) -> int | None:
    size: int | None = direct.execute(
        conn, LINKED_BLOB_SIZE, {"repository": repository, "digest": digest}
    ).scalar()
    return size


RENEWAL_SECONDS = 1.0


def _link_statement(dialect: Any) -> Any:
    stmt = dialect.insert(t.repository_blobs)
    return stmt.on_conflict_do_update(
        index_elements=[t.repository_blobs.c.repository_id, t.repository_blobs.c.digest],
        set_={"created_at": stmt.excluded.created_at},
        # Renewed at most once a second: pushes uploading the same base layer into one
        # repository at once would otherwise all write its link, and on PostgreSQL all but
        # one fail serialization and run again.
        where=t.repository_blobs.c.created_at < stmt.excluded.created_at - RENEWAL_SECONDS,
    )


def link_blob(
    conn: Connection, ids: RepositoryIds, repository: str, digest: str, size: int
) -> None:
    now = time.time()
    repo_id = ids.ensure(conn, repository)
    refuse_over_quota(conn, repository, digest, size)
    insert_ignore(conn, t.blobs, digest=digest, size=size, created_at=now)
    # Linking again renews the link: the grace delay of a push starts at its latest upload.
    direct.execute(
        conn,
        prepared(conn, ("link-blob",), _link_statement),
        {"repository_id": repo_id, "digest": digest, "created_at": now},
    )
    enqueue(conn, [digest], now)


def unlink_blob(conn: Connection, ids: RepositoryIds, repository: str, digest: str) -> bool:
    repo_id = ids.lookup(conn, repository)
    if repo_id is None:
        return False
    result = conn.execute(
        sa.delete(t.repository_blobs).where(
            t.repository_blobs.c.repository_id == repo_id,
            t.repository_blobs.c.digest == digest,
        )
    )
    if result.rowcount:
        enqueue(conn, [digest])
    return result.rowcount > 0


def repositories_linking(conn: Connection, digest: str, limit: int) -> list[str]:
    return list(
        conn.execute(
            sa.select(t.repositories.c.name)
            .join(t.repository_blobs, t.repositories.c.id == t.repository_blobs.c.repository_id)
            .where(t.repository_blobs.c.digest == digest)
            .order_by(t.repositories.c.name)
            .limit(limit)
        ).scalars()
    )


def unreferenced_blobs(conn: Connection) -> list[str]:
    return list(conn.execute(UNREFERENCED).scalars())


def all_blob_digests(conn: Connection) -> list[str]:
    return list(conn.execute(sa.select(t.blobs.c.digest).order_by(t.blobs.c.digest)).scalars())


def forget_blob_records(conn: Connection, digests: list[str]) -> None:
    for start in range(0, len(digests), 500):
        batch = digests[start : start + 500]
        conn.execute(sa.delete(t.repository_blobs).where(t.repository_blobs.c.digest.in_(batch)))
        conn.execute(sa.delete(t.blobs).where(t.blobs.c.digest.in_(batch)))


class SQLBlobLinks(SQLAggregate):
    async def blob_size(self, digest: str) -> int | None:
        return await self.runner.read(
            partial(blob_size, digest=digest), inline=True, key=("blob", digest)
        )

    async def linked_blob_size(self, repository: str, digest: str) -> int | None:
        return await self.runner.read(
            partial(linked_blob_size, repository=repository, digest=digest),
            inline=True,
            key=("linked", repository, digest),
        )

    async def link_blob(self, repository: str, digest: str, size: int) -> None:
        await self.runner.write(
            partial(link_blob, ids=self.ids, repository=repository, digest=digest, size=size),
            turn=namespace_of(repository),
        )

    async def unlink_blob(self, repository: str, digest: str) -> bool:
        return await self.runner.write(
            partial(unlink_blob, ids=self.ids, repository=repository, digest=digest)
        )

    async def repositories_linking(self, digest: str, limit: int) -> list[str]:
        return await self.runner.read(partial(repositories_linking, digest=digest, limit=limit))

    async def unreferenced_blobs(self) -> list[str]:
        return await self.runner.read(unreferenced_blobs)

    async def all_blob_digests(self) -> list[str]:
        return await self.runner.read(all_blob_digests)

    async def forget_blob_records(self, digests: list[str]) -> None:
        await self.runner.write(partial(forget_blob_records, digests=digests))
