"""Deleting a whole repository: its tags, manifests, blob links, uploads and settings at once.

The repository's own row stays: every server process remembers repository ids (see
`RepositoryIds`), and a push that began before the deletion then lands in the same, now empty,
repository, never under an id nobody can see. A repository without content is not listed and
its tags are unknown (`catalog`), so to clients it is gone. What it referred to is queued for
the garbage collector, which removes the bytes nothing else references.
"""

from __future__ import annotations

import time
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.core.event_origin import EventOrigin, current_origin
from dockyard.metadata import review_queue
from dockyard.metadata import schema as t
from dockyard.metadata.access import access_changed, storable
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.audit import audited
from dockyard.metadata.base import AuditOf, RemovedRepository
from dockyard.metadata.events import record_event
from dockyard.metadata.statements import RepositoryIds


def delete_repository(
    conn: Connection, ids: RepositoryIds, repository: str, origin: EventOrigin | None = None
) -> RemovedRepository | None:
    """None when the repository holds nothing at all (never pushed to, or deleted before)."""
    repo_id = ids.lookup(conn, repository) if storable(repository) else None
    if repo_id is None:
        return None
    uploads = list(
        conn.execute(
            sa.select(t.uploads.c.id)
            .where(t.uploads.c.repository_id == repo_id)
            .order_by(t.uploads.c.id)
        ).scalars()
    )
    # Everything the repository referred to is reviewed by the garbage collector: queued in
    # this transaction, as every dropped reference is, or its bytes would never be looked at.
    held = [
        *conn.execute(
            sa.select(t.manifests.c.digest).where(t.manifests.c.repository_id == repo_id)
        ).scalars(),
        *conn.execute(
            sa.select(t.repository_blobs.c.digest).where(
                t.repository_blobs.c.repository_id == repo_id
            )
        ).scalars(),
        *conn.execute(
            sa.select(t.manifest_references.c.target_digest).where(
                t.manifest_references.c.repository_id == repo_id
            )
        ).scalars(),
    ]
    counts: dict[str, int] = {}
    # Children before parents: tags and edges name manifests.
    for table in (
        t.tags,
        t.manifest_references,
        t.manifests,
        t.repository_blobs,
        t.uploads,
        t.repository_settings,
        t.repository_info,
        t.cached_tags,
    ):
        result = conn.execute(sa.delete(table).where(table.c.repository_id == repo_id))
        counts[table.name] = result.rowcount
    if not any(counts.values()):
        return None
    review_queue.enqueue(conn, held)
    record_event(conn, repository, "delete", time.time(), origin)
    if counts[t.repository_settings.name]:
        # A private repository's grants are forgotten by every process within a second.
        access_changed(conn)
    return RemovedRepository(
        tags=counts[t.tags.name],
        manifests=counts[t.manifests.name],
        blob_links=counts[t.repository_blobs.name],
        uploads=uploads,
    )


class SQLRepositoryRemoval(SQLAggregate):
    async def delete_repository(
        self, repository: str, *, audit: AuditOf = None
    ) -> RemovedRepository | None:
        return await self.runner.write(
            audited(
                partial(
                    delete_repository,
                    ids=self.ids,
                    repository=repository,
                    origin=current_origin(),
                ),
                audit,
            )
        )
