"""Manifests, their edges (to blobs and child manifests) and the tags that point at them.

A manifest, its edges and its tags are stored in one transaction; deleting a manifest takes its
tags and edges with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.core.event_origin import EventOrigin, current_origin
from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.audit import audited
from dockyard.metadata.base import (
    AuditEntry,
    ChildrenMissing,
    ManifestInUse,
    ManifestRecord,
    Reference,
)
from dockyard.metadata.blob_links import link_blob
from dockyard.metadata.events import record_event
from dockyard.metadata.quotas import namespace_of, refuse_over_quota
from dockyard.metadata.review_queue import enqueue
from dockyard.metadata.statements import (
    RepositoryIds,
    insert_ignore,
    prepared,
)
from dockyard.metadata.tag_rules import (
    current_digests,
    refuse_immutable_moves,
    refuse_immutable_removals,
    tags_of_manifest,
)

MANIFEST_COLUMNS = (
    t.manifests.c.digest,
    t.manifests.c.media_type,
    t.manifests.c.size,
    t.manifests.c.artifact_type,
    t.manifests.c.subject,
    t.manifests.c.annotations,
    t.manifests.c.created_at,
)

# The lookups of every pull, built once: building a Core statement per call (and its cache
# key) would be most of a manifest GET's work.
GET_MANIFEST = (
    sa.select(*MANIFEST_COLUMNS)
    .join(t.repositories)
    .where(
        t.repositories.c.name == sa.bindparam("repository"),
        t.manifests.c.digest == sa.bindparam("digest"),
    )
)
RESOLVE_TAG = (
    sa.select(*MANIFEST_COLUMNS)
    .select_from(t.tags)
    .join(
        t.manifests,
        sa.and_(
            t.manifests.c.repository_id == t.tags.c.repository_id,
            t.manifests.c.digest == t.tags.c.manifest_digest,
        ),
    )
    .join(t.repositories, t.repositories.c.id == t.tags.c.repository_id)
    .where(
        t.repositories.c.name == sa.bindparam("repository"), t.tags.c.name == sa.bindparam("tag")
    )
)

_tagged = sa.exists().where(
    t.tags.c.repository_id == t.manifests.c.repository_id,
    t.tags.c.manifest_digest == t.manifests.c.digest,
)
_a_child = sa.exists().where(
    t.manifest_references.c.repository_id == t.manifests.c.repository_id,
    t.manifest_references.c.target_digest == t.manifests.c.digest,
    t.manifest_references.c.kind == "manifest",
    t.manifest_references.c.manifest_digest != t.manifests.c.digest,
)
# One pass over `manifests`; each test an indexed lookup (ix_tags_manifest,
# ix_manifest_references_target).
UNTAGGED = (
    sa.select(t.repositories.c.name, t.manifests.c.digest)
    .join(t.repositories, t.repositories.c.id == t.manifests.c.repository_id)
    .where(~_tagged, ~_a_child)
    .order_by(t.repositories.c.name, t.manifests.c.digest)
)


def manifest_record(row: Any) -> ManifestRecord:
    """A row of `MANIFEST_COLUMNS` as a record."""
    return ManifestRecord(
        digest=row[0],
        media_type=row[1],
        size=row[2],
        artifact_type=row[3],
        subject=row[4],
        annotations=json.loads(row[5]) if row[5] else {},
        created_at=row[6],
    )


def _upsert_tag_statement(dialect: Any) -> Any:
    stmt = dialect.insert(t.tags)
    return stmt.on_conflict_do_update(
        index_elements=[t.tags.c.repository_id, t.tags.c.name],
        set_={
            "manifest_digest": stmt.excluded.manifest_digest,
            "updated_at": stmt.excluded.updated_at,
        },
    )


def upsert_tag(conn: Connection, repo_id: int, tag: str, digest: str, now: float) -> None:
    direct.execute(
        conn,
        prepared(conn, ("upsert-tag",), _upsert_tag_statement),
        {"repository_id": repo_id, "name": tag, "manifest_digest": digest, "updated_at": now},
    )


def require_children(conn: Connection, repo_id: int, children: list[str]) -> None:
    present = set(
        conn.execute(
            sa.select(t.manifests.c.digest).where(
                t.manifests.c.repository_id == repo_id,
                t.manifests.c.digest.in_(children),
            )
        ).scalars()
    )
    missing = [d for d in children if d not in present]
    if missing:
        raise ChildrenMissing(missing)


def put_manifest(
    conn: Connection,
    ids: RepositoryIds,
    repository: str,
    record: ManifestRecord,
    references: list[Reference],
    tags: list[str],
    children_required: bool,
    immutable_checked: bool = False,
    links: Sequence[tuple[str, int]] = (),
    origin: EventOrigin | None = None,
) -> None:
    for digest, size in links:
        link_blob(conn, ids, repository, digest, size)
    now = time.time()
    repo_id = ids.ensure(conn, repository)
    children = [r.target for r in references if r.kind == "manifest"]
    if children_required and children:
        require_children(conn, repo_id, children)
    if immutable_checked:
        refuse_immutable_moves(conn, repo_id, repository, tags, record.digest)
    refuse_over_quota(conn, repository, record.digest, record.size)
    insert_ignore(conn, t.blobs, digest=record.digest, size=record.size, created_at=now)
    insert_ignore(
        conn,
        t.manifests,
        repository_id=repo_id,
        digest=record.digest,
        media_type=record.media_type,
        size=record.size,
        artifact_type=record.artifact_type,
        subject=record.subject,
        annotations=json.dumps(record.annotations) if record.annotations else None,
        created_at=now,
    )
    for ref in references:
        insert_ignore(
            conn,
            t.manifest_references,
            repository_id=repo_id,
            manifest_digest=record.digest,
            target_digest=ref.target,
            kind=ref.kind,
        )
    for tag in tags:
        upsert_tag(conn, repo_id, tag, record.digest, now)
    # One push event per tag (or one, pushed by digest), in this transaction.
    pushed: list[str | None] = [*tags] or [None]
    for pushed_tag in pushed:
        record_event(
            conn,
            repository,
            "push",
            now,
            origin,
            digest=record.digest,
            mediaType=record.media_type,
            size=record.size,
            tag=pushed_tag,
        )


def get_manifest(conn: Connection, repository: str, digest: str) -> ManifestRecord | None:
    row = direct.execute(conn, GET_MANIFEST, {"repository": repository, "digest": digest}).first()
    return manifest_record(row) if row else None


def resolve_tag(conn: Connection, repository: str, tag: str) -> ManifestRecord | None:
    row = direct.execute(conn, RESOLVE_TAG, {"repository": repository, "tag": tag}).first()
    return manifest_record(row) if row else None


def missing_manifests(conn: Connection, repository: str, digests: list[str]) -> list[str]:
    found = set(
        conn.execute(
            sa.select(t.manifests.c.digest)
            .join(t.repositories)
            .where(t.repositories.c.name == repository, t.manifests.c.digest.in_(digests))
        ).scalars()
    )
    return [d for d in digests if d not in found]


def refuse_if_in_index(conn: Connection, repo_id: int, digest: str) -> None:
    # Read in the deleting transaction: an index stored meanwhile is either seen here or
    # finds its child gone (`children_required`), never both missed.
    indexes = sorted(
        conn.execute(
            sa.select(t.manifest_references.c.manifest_digest).where(
                t.manifest_references.c.repository_id == repo_id,
                t.manifest_references.c.target_digest == digest,
                t.manifest_references.c.kind == "manifest",
                t.manifest_references.c.manifest_digest != digest,
            )
        ).scalars()
    )
    if not indexes:
        return
    exists = conn.execute(
        sa.select(t.manifests.c.digest).where(
            t.manifests.c.repository_id == repo_id, t.manifests.c.digest == digest
        )
    ).first()
    if exists is not None:
        raise ManifestInUse(indexes)


def delete_manifest(
    conn: Connection,
    ids: RepositoryIds,
    repository: str,
    digest: str,
    unless_in_index: bool,
    immutable_checked: bool = False,
    origin: EventOrigin | None = None,
) -> bool:
    repo_id = ids.lookup(conn, repository)
    if repo_id is None:
        return False
    if unless_in_index:
        refuse_if_in_index(conn, repo_id, digest)
    if immutable_checked:
        refuse_immutable_removals(
            conn, repo_id, repository, tags_of_manifest(conn, repo_id, digest)
        )
    conn.execute(
        sa.delete(t.tags).where(
            t.tags.c.repository_id == repo_id, t.tags.c.manifest_digest == digest
        )
    )
    targets = conn.execute(
        sa.delete(t.manifest_references)
        .where(
            t.manifest_references.c.repository_id == repo_id,
            t.manifest_references.c.manifest_digest == digest,
        )
        .returning(t.manifest_references.c.target_digest)
    ).scalars()
    # What it named may now be needed by nothing: the collector reviews it.
    enqueue(conn, [digest, *targets])
    result = conn.execute(
        sa.delete(t.manifests).where(
            t.manifests.c.repository_id == repo_id, t.manifests.c.digest == digest
        )
    )
    if result.rowcount:
        record_event(conn, repository, "delete", time.time(), origin, digest=digest)
    return result.rowcount > 0


def delete_tag(
    conn: Connection,
    ids: RepositoryIds,
    repository: str,
    tag: str,
    immutable_checked: bool = False,
    origin: EventOrigin | None = None,
) -> bool:
    repo_id = ids.lookup(conn, repository)
    if repo_id is None:
        return False
    if immutable_checked and current_digests(conn, repo_id, [tag]):
        refuse_immutable_removals(conn, repo_id, repository, [tag])
    result = conn.execute(
        sa.delete(t.tags).where(t.tags.c.repository_id == repo_id, t.tags.c.name == tag)
    )
    if result.rowcount:
        record_event(conn, repository, "delete", time.time(), origin, tag=tag)
    return result.rowcount > 0


def referrers(conn: Connection, repository: str, subject: str) -> list[ManifestRecord]:
    rows = conn.execute(
        sa.select(*MANIFEST_COLUMNS)
        .join(t.repositories)
        .where(t.repositories.c.name == repository, t.manifests.c.subject == subject)
        .order_by(t.manifests.c.created_at, t.manifests.c.digest)
    )
    return [manifest_record(row) for row in rows]


def untagged_manifests(conn: Connection) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in conn.execute(UNTAGGED)]


class SQLManifests(SQLAggregate):
    async def put_manifest(
        self,
        repository: str,
        record: ManifestRecord,
        references: list[Reference],
        tags: list[str],
        *,
        children_required: bool = False,
        immutable_checked: bool = False,
        links: Sequence[tuple[str, int]] = (),
        audit: AuditEntry | None = None,
    ) -> None:
        await self.runner.write(
            audited(
                partial(
                    put_manifest,
                    ids=self.ids,
                    repository=repository,
                    record=record,
                    references=references,
                    tags=tags,
                    children_required=children_required,
                    immutable_checked=immutable_checked,
                    links=links,
                    origin=current_origin(),
                ),
                audit,
            ),
            turn=namespace_of(repository),
        )

    async def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None:
        return await self.runner.read(
            partial(get_manifest, repository=repository, digest=digest),
            inline=True,
            key=("manifest", repository, digest),
        )

    async def resolve_tag(self, repository: str, tag: str) -> ManifestRecord | None:
        return await self.runner.read(
            partial(resolve_tag, repository=repository, tag=tag),
            inline=True,
            key=("tag", repository, tag),
        )

    async def missing_manifests(self, repository: str, digests: list[str]) -> list[str]:
        if not digests:
            return []
        return await self.runner.read(
            partial(missing_manifests, repository=repository, digests=digests)
        )

    async def delete_manifest(
        self,
        repository: str,
        digest: str,
        *,
        unless_in_index: bool = False,
        immutable_checked: bool = False,
        audit: AuditEntry | None = None,
    ) -> bool:
        return await self.runner.write(
            audited(
                partial(
                    delete_manifest,
                    ids=self.ids,
                    repository=repository,
                    digest=digest,
                    unless_in_index=unless_in_index,
                    immutable_checked=immutable_checked,
                    origin=current_origin(),
                ),
                audit,
            )
        )

    async def delete_tag(
        self,
        repository: str,
        tag: str,
        *,
        immutable_checked: bool = False,
        audit: AuditEntry | None = None,
    ) -> bool:
        return await self.runner.write(
            audited(
                partial(
                    delete_tag,
                    ids=self.ids,
                    repository=repository,
                    tag=tag,
                    immutable_checked=immutable_checked,
                    origin=current_origin(),
                ),
                audit,
            )
        )

    async def referrers(self, repository: str, subject: str) -> list[ManifestRecord]:
        return await self.runner.read(partial(referrers, repository=repository, subject=subject))

    async def untagged_manifests(self) -> list[tuple[str, str]]:
        return await self.runner.read(untagged_manifests)
