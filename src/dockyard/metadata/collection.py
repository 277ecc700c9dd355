"""The garbage collector's queries: the review queue, and deciding in one transaction what goes.

A digest is queued whenever one of its references may have gone (a link dropped, a manifest
deleted) or a reference was made that nothing may ever use (a link from an upload or a mount).
Reviewing it re-reads every reference inside the transaction that deletes its records, so a
manifest stored a moment earlier keeps it. The caller holds the content lock (sweeping) around
that transaction and the removal of the bytes after it, so no push stands between the two.

A link is a reference for as long as a manifest of its repository uses the blob, or while it
is younger than the grace delay (a push uploads layers before its manifest). Links of cached
(pull-through) repositories are the cache's business and never dropped here.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.base import Collected
from dockyard.metadata.cache_index import under
from dockyard.metadata.manifests import delete_manifest
from dockyard.metadata.review_queue import enqueue


def due_for_review(conn: Connection, cutoff: float, limit: int, after: str) -> list[str]:
    """Digests with a row older than the cutoff (a digest may have several: one per change)."""
    q = t.gc_queue
    return list(
        conn.execute(
            sa.select(q.c.digest)
            .where(q.c.queued_at <= cutoff, q.c.digest > after)
            .group_by(q.c.digest)
            .order_by(q.c.digest)
            .limit(limit)
        ).scalars()
    )


def queued_since(conn: Connection, since: float, cutoff: float) -> tuple[float, float] | None:
    """Of the rows queued after `since`: when the earliest was queued, and when the latest of
    those older than `cutoff` (due) was (`since` when none is); None when there is no row."""
    q = t.gc_queue
    latest_due = sa.func.max(sa.case((q.c.queued_at <= cutoff, q.c.queued_at)))
    row = conn.execute(
        sa.select(sa.func.min(q.c.queued_at), latest_due).where(q.c.queued_at > since)
    ).one()
    if row[0] is None:
        return None
    return float(row[0]), since if row[1] is None else float(row[1])


def queue_length(conn: Connection) -> int:
    """How many digests wait for review."""
    count = sa.func.count(sa.distinct(t.gc_queue.c.digest))
    return int(conn.execute(sa.select(count)).scalar() or 0)


def _dangling_links(digests: list[str], cutoff: float, keep: list[str]) -> sa.ColumnElement[bool]:
    """Links of `digests` no manifest of their repository uses, older than the cutoff, outside
    the cached repositories."""
    rb, refs, m = t.repository_blobs, t.manifest_references, t.manifests
    used_there = sa.or_(
        sa.exists().where(
            refs.c.repository_id == rb.c.repository_id, refs.c.target_digest == rb.c.digest
        ),
        sa.exists().where(m.c.repository_id == rb.c.repository_id, m.c.digest == rb.c.digest),
    )
    cached = rb.c.repository_id.in_(sa.select(t.repositories.c.id).where(under(keep)))
    return sa.and_(rb.c.digest.in_(digests), rb.c.created_at <= cutoff, ~used_there, ~cached)


def _referenced(conn: Connection, digests: list[str], cutoff: float, keep: list[str]) -> set[str]:
    """Those of `digests` something but a dangling link refers to: a manifest of that digest,
    a manifest naming it, or a link that stays."""
    rb = t.repository_blobs
    checks = (
        sa.select(t.manifests.c.digest).where(t.manifests.c.digest.in_(digests)),
        sa.select(t.manifest_references.c.target_digest).where(
            t.manifest_references.c.target_digest.in_(digests)
        ),
        sa.select(rb.c.digest).where(
            rb.c.digest.in_(digests), ~_dangling_links(digests, cutoff, keep)
        ),
    )
    found: set[str] = set()
    for check in checks:
        found.update(conn.execute(check.distinct()).scalars())
    return found


def collect_blobs(
    conn: Connection, digests: list[str], cutoff: float, keep: list[str], dry_run: bool
) -> Collected:
    """Review queued `digests` still due: drop their dangling links and, when nothing else
    refers to them, their records. Returns what went (or would go); the bytes are the caller's.

    The whole batch is decided by a handful of set statements, not several per digest: the
    writer a collection holds is the one every push waits for (figure in bench/README.md)."""
    q, rb, blobs = t.gc_queue, t.repository_blobs, t.blobs
    due = sa.select(q.c.digest).where(q.c.digest.in_(digests), q.c.queued_at <= cutoff)
    if not dry_run:
        # Another collector reviewing the same rows skips them instead of waiting.
        due = due.with_for_update(skip_locked=True)
    collected = Collected()
    # Only the rows read here leave the queue (`queued_at <= cutoff` in this snapshot): a row a
    # change adds meanwhile stays, and its digest is reviewed again.
    reviewing = list(dict.fromkeys(conn.execute(due.order_by(q.c.digest)).scalars()))
    if not reviewing:
        return collected
    dangling = _dangling_links(reviewing, cutoff, keep)
    if dry_run:
        collected.links = int(
            conn.execute(sa.select(sa.func.count()).select_from(rb).where(dangling)).scalar() or 0
        )
    else:
        dropped = list(conn.execute(sa.delete(rb).where(dangling).returning(rb.c.repository_id)))
        collected.links = len(dropped)  # one link per repository and digest
    # Read after the links went, in the same transaction: a manifest stored a moment earlier
    # names its blobs here and keeps them.
    referenced = _referenced(conn, reviewing, cutoff, keep)
    if referenced and not dry_run:
        conn.execute(sa.delete(q).where(q.c.digest.in_(referenced), q.c.queued_at <= cutoff))
    unreferenced = [digest for digest in reviewing if digest not in referenced]
    if not unreferenced:
        return collected
    sizes = {
        row[0]: row[1]
        for row in conn.execute(
            sa.select(blobs.c.digest, blobs.c.size).where(blobs.c.digest.in_(unreferenced))
        )
    }
    if not dry_run:
        # The queue rows stay until the bytes are gone (`reviewed`): a collector killed in
        # between leaves them for the next one, which finds no record and removes the bytes.
        conn.execute(sa.delete(blobs).where(blobs.c.digest.in_(unreferenced)))
    for digest in unreferenced:
        size = sizes.get(digest)
        collected.blobs.append((digest, None if size is None else int(size)))
    return collected


def reviewed(conn: Connection, digests: list[str], cutoff: float) -> None:
    """Take `digests`, whose bytes are gone, off the queue (unless queued again since)."""
    q = t.gc_queue
    for start in range(0, len(digests), 500):
        batch = digests[start : start + 500]
        conn.execute(sa.delete(q).where(q.c.digest.in_(batch), q.c.queued_at <= cutoff))


def collect_next(
    conn: Connection,
    cutoff: float,
    limit: int,
    after: str,
    keep: list[str],
    reviewed_digests: list[str],
) -> tuple[list[str], Collected]:
    """The last batch's digests off the queue, the next batch picked and collected: one
    transaction (one commit waited for) per batch instead of three round trips."""
    if reviewed_digests:
        reviewed(conn, reviewed_digests, cutoff)
    due = due_for_review(conn, cutoff, limit, after)
    if not due:
        return due, Collected()
    return due, collect_blobs(conn, due, cutoff, keep, dry_run=False)


def _collectable_manifests(cutoff: float, keep: list[str]) -> sa.Select[Any]:
    """Manifests no tag points at, no index of their repository names, not a referrer of a
    manifest their repository holds, older than the cutoff, outside the cached repositories."""
    m, r = t.manifests, t.repositories
    subject = m.alias("subject")
    tagged = sa.exists().where(
        t.tags.c.repository_id == m.c.repository_id, t.tags.c.manifest_digest == m.c.digest
    )
    a_child = sa.exists().where(
        t.manifest_references.c.repository_id == m.c.repository_id,
        t.manifest_references.c.target_digest == m.c.digest,
        t.manifest_references.c.kind == "manifest",
        t.manifest_references.c.manifest_digest != m.c.digest,
    )
    subject_held = sa.exists().where(
        subject.c.repository_id == m.c.repository_id, subject.c.digest == m.c.subject
    )
    return (
        sa.select(r.c.name, m.c.digest, m.c.size)
        .join(r, r.c.id == m.c.repository_id)
        .where(~tagged, ~a_child, ~subject_held, m.c.created_at <= cutoff, ~under(keep))
        .order_by(r.c.name, m.c.digest)
    )


def untagged_due(
    conn: Connection, cutoff: float, keep: list[str], limit: int, after: tuple[str, str]
) -> list[tuple[str, str]]:
    position = sa.tuple_(t.repositories.c.name, t.manifests.c.digest)
    rows = conn.execute(
        _collectable_manifests(cutoff, keep).where(position > sa.tuple_(*after)).limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


def collect_untagged(
    conn: Connection,
    ids: Any,
    manifests: list[tuple[str, str]],
    cutoff: float,
    keep: list[str],
    dry_run: bool,
) -> list[tuple[str, str, int]]:
    """Delete those of `manifests` still collectable (read again here); their content is
    queued for review. Returns (repository, digest, size) of each."""
    still = _collectable_manifests(cutoff, keep).where(
        sa.tuple_(t.repositories.c.name, t.manifests.c.digest).in_(manifests)
    )
    gone = [(row[0], row[1], int(row[2])) for row in conn.execute(still)]
    if not dry_run:
        for repository, digest, _ in gone:
            delete_manifest(conn, ids, repository, digest, unless_in_index=True)
    return gone


class SQLCollection(SQLAggregate):
    async def enqueue_for_review(self, digests: list[str]) -> None:
        await self.runner.write(partial(enqueue, digests=digests))

    async def due_for_review(self, cutoff: float, limit: int, after: str = "") -> list[str]:
        return await self.runner.read(
            partial(due_for_review, cutoff=cutoff, limit=limit, after=after)
        )

    async def queued_since(self, since: float, cutoff: float) -> tuple[float, float] | None:
        return await self.runner.read(partial(queued_since, since=since, cutoff=cutoff))

    async def review_queue_length(self) -> int:
        return await self.runner.read(queue_length)

    async def collect_blobs(
        self, digests: list[str], cutoff: float, keep: list[str], *, dry_run: bool = False
    ) -> Collected:
        work = partial(collect_blobs, digests=digests, cutoff=cutoff, keep=keep, dry_run=dry_run)
        return await (self.runner.read(work) if dry_run else self.runner.write(work))

    async def reviewed(self, digests: list[str], cutoff: float) -> None:
        if digests:
            # Not waiting for the disk: a row a power cut brings back is reviewed again, finds
            # no record and no bytes, and leaves. The collector holds the content lock over
            # this commit, so a durable one would keep every push waiting for the disk too.
            work = partial(reviewed, digests=digests, cutoff=cutoff)
            await self.runner.write(work, durable=False)

    async def collect_next(
        self, cutoff: float, limit: int, after: str, keep: list[str], reviewed: list[str]
    ) -> tuple[list[str], Collected]:
        work = partial(
            collect_next,
            cutoff=cutoff,
            limit=limit,
            after=after,
            keep=keep,
            reviewed_digests=reviewed,
        )
        return await self.runner.write(work)

    async def untagged_due(
        self, cutoff: float, keep: list[str], limit: int, after: tuple[str, str] = ("", "")
    ) -> list[tuple[str, str]]:
        return await self.runner.read(
            partial(untagged_due, cutoff=cutoff, keep=keep, limit=limit, after=after)
        )

    async def collect_untagged(
        self,
        manifests: list[tuple[str, str]],
        cutoff: float,
        keep: list[str],
        *,
        dry_run: bool = False,
    ) -> list[tuple[str, str, int]]:
        work = partial(
            collect_untagged,
            ids=self.ids,
            manifests=manifests,
            cutoff=cutoff,
            keep=keep,
            dry_run=dry_run,
        )
        return await (self.runner.read(work) if dry_run else self.runner.write(work))
