"""Namespace quotas: the limits, the usage the triggers of revision 0009 keep, and the check a
link or a stored manifest makes in its own transaction.

Usage is in deduplicated bytes: a digest counts once per namespace, whether one repository
links it or ten, as a blob or as a manifest. The check reads the counters, not the links: at
most 16 rows per write, however large the namespace, and nothing but the limit where no quota is
set. Concurrent writes cannot both pass it: on SQLite writers take turns, and on PostgreSQL each
reads every part of the counter and updates one, in serializable transactions, so one of two
is run again and then sees the other's bytes.
"""

from __future__ import annotations

from collections import defaultdict
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.audit import audited
from dockyard.metadata.base import AuditOf, NamespaceQuota, QuotaExceeded

QUOTA_LIMIT = sa.select(t.namespace_quotas.c.limit_bytes).where(
    t.namespace_quotas.c.namespace == sa.bindparam("namespace")
)
USAGE = sa.select(sa.func.sum(t.namespace_usage.c.bytes)).where(
    t.namespace_usage.c.namespace == sa.bindparam("namespace")
)
USAGE_AND_HELD = sa.select(
    USAGE.scalar_subquery(),
    sa.exists().where(
        t.namespace_blobs.c.namespace == sa.bindparam("namespace"),
        t.namespace_blobs.c.digest == sa.bindparam("digest"),
    ),
)


def namespace_of(repository: str) -> str:
    return repository.split("/", 1)[0]


def refuse_over_quota(conn: Connection, repository: str, digest: str, size: int) -> None:
    """Raise `QuotaExceeded` when holding `digest` in `repository` would take its namespace
    past its quota. A digest the namespace holds already adds nothing."""
    namespace = namespace_of(repository)
    limit = direct.execute(conn, QUOTA_LIMIT, {"namespace": namespace}).scalar()
    if limit is None:
        # Without a quota the usage is not read: on PostgreSQL, a read of it would make every
        # push of the namespace conflict with every other one (serializable transactions).
        return
    row = direct.execute(conn, USAGE_AND_HELD, {"namespace": namespace, "digest": digest}).first()
    assert row is not None  # one row, whatever the namespace
    used, held = int(row[0] or 0), bool(row[1])
    if held:
        return
    if used + size > limit:
        raise QuotaExceeded(namespace, used + size, limit)


def set_quota(conn: Connection, namespace: str, limit: int | None) -> None:
    conn.execute(sa.delete(t.namespace_quotas).where(t.namespace_quotas.c.namespace == namespace))
    if limit is not None:
        conn.execute(sa.insert(t.namespace_quotas).values(namespace=namespace, limit_bytes=limit))


def quota(conn: Connection, namespace: str) -> NamespaceQuota:
    limit = conn.execute(QUOTA_LIMIT, {"namespace": namespace}).scalar()
    used = conn.execute(USAGE, {"namespace": namespace}).scalar()
    return NamespaceQuota(namespace, limit, int(used or 0))


def counted_usage(conn: Connection) -> dict[str, int]:
    u = t.namespace_usage
    rows = conn.execute(sa.select(u.c.namespace, sa.func.sum(u.c.bytes)).group_by(u.c.namespace))
    return {row[0]: int(row[1]) for row in rows if row[1]}


def scanned_usage(conn: Connection) -> dict[str, int]:
    """What the counters should say, from the links and manifests themselves."""
    sizes: dict[tuple[str, str], int] = {}
    links = conn.execute(
        sa.select(t.repositories.c.name, t.blobs.c.digest, t.blobs.c.size)
        .select_from(t.repository_blobs)
        .join(t.repositories, t.repositories.c.id == t.repository_blobs.c.repository_id)
        .join(t.blobs, t.blobs.c.digest == t.repository_blobs.c.digest)
    )
    manifests = conn.execute(
        sa.select(t.repositories.c.name, t.manifests.c.digest, t.manifests.c.size).join(
            t.repositories, t.repositories.c.id == t.manifests.c.repository_id
        )
    )
    for rows in (links, manifests):
        for name, digest, size in rows:
            sizes[(namespace_of(name), digest)] = size
    usage: dict[str, int] = defaultdict(int)
    for (namespace, _), size in sizes.items():
        usage[namespace] += size
    return {namespace: total for namespace, total in usage.items() if total}


class SQLQuotas(SQLAggregate):
    async def set_quota(self, namespace: str, limit: int | None, *, audit: AuditOf = None) -> None:
        await self.runner.write(
            audited(partial(set_quota, namespace=namespace, limit=limit), audit)
        )

    async def quota(self, namespace: str) -> NamespaceQuota:
        return await self.runner.read(partial(quota, namespace=namespace))

    async def check_quota(self, repository: str, digest: str, size: int) -> None:
        await self.runner.read(
            partial(refuse_over_quota, repository=repository, digest=digest, size=size),
            inline=True,
        )

    async def quota_usage(self, *, scan: bool = False) -> dict[str, int]:
        return await self.runner.read(scanned_usage if scan else counted_usage)
