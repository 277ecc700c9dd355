"""Storage usage: what each repository and each namespace holds, and the registry's total.

A repository holds the blobs it links and the manifests stored in it (a manifest's bytes are a
blob too). A namespace's bytes count each blob once however many of its repositories hold it;
the part also held by another namespace is reported as shared, since deleting the namespace
would not free it. Each figure is one statement, so a report is one snapshot per aggregate.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import schema as t
from dockyard.metadata.base import NamespaceUsage, RegistryTotal, RepositoryUsage
from dockyard.metadata.repository_removal import SQLRepositoryRemoval


def namespace_of(dialect: str, name: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """The first component of a repository name (the whole name when it has one)."""
    if dialect == "postgresql":
        return sa.func.split_part(name, "/", 1)
    slash = sa.func.instr(name, "/")
    return sa.case((slash > 0, sa.func.substr(name, 1, slash - 1)), else_=name)


def _held() -> sa.CTE:
    """(repository id, digest) of everything a repository holds, each pair once."""
    return sa.union(
        sa.select(t.repository_blobs.c.repository_id, t.repository_blobs.c.digest),
        sa.select(t.manifests.c.repository_id, t.manifests.c.digest),
    ).cte("held")


def _in_namespace(namespace: str) -> sa.ColumnElement[bool]:
    name = t.repositories.c.name
    # autoescape: '_' and '%' in a namespace are LIKE wildcards that would reach others.
    return sa.or_(name == namespace, name.startswith(namespace + "/", autoescape=True))


def repository_usage(conn: Connection, namespace: str | None) -> list[RepositoryUsage]:
    held = _held()
    r, b = t.repositories, t.blobs
    query: sa.Select[Any] = (
        sa.select(r.c.name, sa.func.count(), sa.func.coalesce(sa.func.sum(b.c.size), 0))
        .select_from(held)
        .join(r, r.c.id == held.c.repository_id)
        .join(b, b.c.digest == held.c.digest)
        .group_by(r.c.name)
        .order_by(r.c.name)
    )
    if namespace is not None:
        query = query.where(_in_namespace(namespace))
    return [RepositoryUsage(row[0], int(row[1]), int(row[2])) for row in conn.execute(query)]


def namespace_usage(conn: Connection, namespace: str | None) -> list[NamespaceUsage]:
    held = _held()
    r, b = t.repositories, t.blobs
    ns = namespace_of(conn.dialect.name, r.c.name)
    by_namespace = (
        sa.select(
            ns.label("namespace"),
            held.c.digest,
            sa.func.count().label("repositories"),
        )
        .select_from(held)
        .join(r, r.c.id == held.c.repository_id)
        .group_by(ns, held.c.digest)
        .cte("by_namespace")
    )
    # In how many namespaces each digest is held: more than one, and its bytes are shared.
    spread = (
        sa.select(by_namespace.c.digest, sa.func.count().label("namespaces"))
        .group_by(by_namespace.c.digest)
        .cte("spread")
    )
    repositories = (
        sa.select(ns.label("namespace"), sa.func.count().label("repositories"))
        .select_from(r)
        .where(sa.exists().where(held.c.repository_id == r.c.id))
        .group_by(ns)
        .cte("repository_counts")
    )
    query: sa.Select[Any] = (
        sa.select(
            by_namespace.c.namespace,
            sa.func.max(repositories.c.repositories),
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(b.c.size), 0),
            sa.func.coalesce(sa.func.sum(sa.case((spread.c.namespaces > 1, b.c.size), else_=0)), 0),
        )
        .select_from(by_namespace)
        .join(b, b.c.digest == by_namespace.c.digest)
        .join(spread, spread.c.digest == by_namespace.c.digest)
        .join(repositories, repositories.c.namespace == by_namespace.c.namespace)
        .group_by(by_namespace.c.namespace)
        .order_by(by_namespace.c.namespace)
    )
    if namespace is not None:
        query = query.where(by_namespace.c.namespace == namespace)
    return [
        NamespaceUsage(row[0], int(row[1]), int(row[2]), int(row[3]), int(row[4]))
        for row in conn.execute(query)
    ]


def registry_total(conn: Connection) -> RegistryTotal:
    row = conn.execute(
        sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(t.blobs.c.size), 0)).select_from(
            t.blobs
        )
    ).one()
    return RegistryTotal(int(row[0]), int(row[1]))


class SQLRepositories(SQLRepositoryRemoval):
    """Deleting repositories (`repository_removal`) and the usage of what they hold."""

    async def repository_usage(self, namespace: str | None) -> list[RepositoryUsage]:
        return await self.runner.read(partial(repository_usage, namespace=namespace))

    async def namespace_usage(self, namespace: str | None) -> list[NamespaceUsage]:
        return await self.runner.read(partial(namespace_usage, namespace=namespace))

    async def registry_total(self) -> RegistryTotal:
        return await self.runner.read(registry_total)
