"""Retention policies, the pushed tags they judge, and the removal of an expired tag.

A tag is removed only as it was judged: `expire_tag` deletes it in a transaction that checks
it was not pushed again meanwhile (its `updated_at` moves with every push), and that no
immutability rule holds it, so a policy applied while clients push never takes a fresh tag.
"""

from __future__ import annotations

import time
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.audit import audited
from dockyard.metadata.base import AuditOf, PushedTag, RetentionPolicy
from dockyard.metadata.events import record_event
from dockyard.metadata.statements import RepositoryIds
from dockyard.metadata.tag_rules import refuse_immutable_removals

POLICIES = t.retention_policies


def set_retention_policy(conn: Connection, policy: RetentionPolicy, now: float) -> None:
    conn.execute(sa.delete(POLICIES).where(POLICIES.c.scope == policy.scope))
    conn.execute(
        sa.insert(POLICIES).values(
            scope=policy.scope,
            keep_last=policy.keep_last,
            older_than_seconds=policy.older_than_seconds,
            keep_pattern=policy.keep_pattern,
            updated_at=now,
        )
    )


def remove_retention_policy(conn: Connection, scope: str) -> bool:
    return conn.execute(sa.delete(POLICIES).where(POLICIES.c.scope == scope)).rowcount > 0


def _in_scope(column: sa.ColumnElement[str], scope: str) -> sa.ColumnElement[bool]:
    # Compared as text: a LIKE would read `_` and `%` in names as wildcards.
    prefix = scope + "/"
    return sa.or_(column == scope, sa.func.substr(column, 1, len(prefix)) == prefix)


def retention_policies(conn: Connection, scope: str | None) -> list[RetentionPolicy]:
    query = sa.select(
        POLICIES.c.scope,
        POLICIES.c.keep_last,
        POLICIES.c.older_than_seconds,
        POLICIES.c.keep_pattern,
    ).order_by(POLICIES.c.scope)
    if scope is not None:
        query = query.where(_in_scope(POLICIES.c.scope, scope))
    return [RetentionPolicy(*row) for row in conn.execute(query)]


def pushed_tags(conn: Connection, scope: str) -> list[PushedTag]:
    rows = conn.execute(
        sa.select(
            t.repositories.c.name, t.tags.c.name, t.tags.c.manifest_digest, t.tags.c.updated_at
        )
        .join(t.repositories, t.repositories.c.id == t.tags.c.repository_id)
        .where(_in_scope(t.repositories.c.name, scope))
        .order_by(t.repositories.c.name, t.tags.c.name)
    )
    return [PushedTag(*row) for row in rows]


def expire_tag(
    conn: Connection, ids: RepositoryIds, repository: str, tag: str, pushed_at: float
) -> bool:
    repo_id = ids.lookup(conn, repository)
    if repo_id is None:
        return False
    same = sa.and_(
        t.tags.c.repository_id == repo_id,
        t.tags.c.name == tag,
        t.tags.c.updated_at == pushed_at,
    )
    if conn.execute(sa.select(t.tags.c.name).where(same)).first() is None:
        return False
    refuse_immutable_removals(conn, repo_id, repository, [tag])
    conn.execute(sa.delete(t.tags).where(same))
    record_event(conn, repository, "delete", time.time(), None, tag=tag)
    return True


class SQLRetention(SQLAggregate):
    async def set_retention_policy(
        self, policy: RetentionPolicy, now: float, *, audit: AuditOf = None
    ) -> None:
        await self.runner.write(
            audited(partial(set_retention_policy, policy=policy, now=now), audit)
        )

    async def remove_retention_policy(self, scope: str, *, audit: AuditOf = None) -> bool:
        return await self.runner.write(
            audited(partial(remove_retention_policy, scope=scope), audit)
        )

    async def retention_policies(self, scope: str | None = None) -> list[RetentionPolicy]:
        return await self.runner.read(partial(retention_policies, scope=scope))

    async def pushed_tags(self, scope: str) -> list[PushedTag]:
        return await self.runner.read(partial(pushed_tags, scope=scope))

    async def expire_tag(self, repository: str, tag: str, pushed_at: float) -> bool:
        return await self.runner.write(
            partial(expire_tag, ids=self.ids, repository=repository, tag=tag, pushed_at=pushed_at)
        )
