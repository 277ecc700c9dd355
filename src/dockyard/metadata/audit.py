"""The audit log's queries: append a record, read records by filter a page at a time (newest
first, the last id read as the cursor), prune the records older than the retention period."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.base import AuditEntry, AuditOf, AuditQuery

AUDIT = t.audit_log
T = TypeVar("T")


def record_audit(conn: Connection, entry: AuditEntry) -> None:
    """Usable inside another write's transaction, so a change and its record commit together."""
    conn.execute(
        sa.insert(AUDIT).values(
            at=entry.at,
            action=entry.action,
            account=entry.account,
            token=entry.token,
            address=entry.address,
            repository=entry.repository,
            object=entry.object,
            detail=json.dumps(entry.detail, sort_keys=True) if entry.detail else None,
        )
    )


def audited(work: Callable[[Connection], T], entry: AuditOf) -> Callable[[Connection], T]:
    """`work` with its audit record written in its transaction (`base.AuditOf`: an entry,
    left out when `work` answers False — nothing was changed —, or a function of the answer):
    a change and its record commit together, or neither does."""
    if entry is None:
        return work

    def both(conn: Connection) -> T:
        result = work(conn)
        record = entry(result) if callable(entry) else (None if result is False else entry)
        if record is not None:
            record_audit(conn, record)
        return result

    return both


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        action=row.action,
        account=row.account,
        token=row.token,
        address=row.address,
        repository=row.repository,
        object=row.object,
        detail=json.loads(row.detail) if row.detail else None,
    )


def audit_entries(conn: Connection, query: AuditQuery) -> list[AuditEntry]:
    statement = sa.select(AUDIT).order_by(AUDIT.c.id.desc()).limit(query.limit)
    if query.before is not None:
        statement = statement.where(AUDIT.c.id < query.before)
    if query.since is not None:
        statement = statement.where(AUDIT.c.at >= query.since)
    if query.until is not None:
        statement = statement.where(AUDIT.c.at < query.until)
    if query.account is not None:
        statement = statement.where(AUDIT.c.account == query.account)
    if query.repository is not None:
        statement = statement.where(AUDIT.c.repository == query.repository)
    if query.action is not None:
        statement = statement.where(AUDIT.c.action == query.action)
    return [_entry(row) for row in conn.execute(statement)]


def prune_audit(conn: Connection, older_than: float) -> int:
    return conn.execute(sa.delete(AUDIT).where(AUDIT.c.at < older_than)).rowcount or 0


class SQLAuditLog(SQLAggregate):
    async def record_audit(self, entry: AuditEntry) -> None:
        await self.runner.write(partial(record_audit, entry=entry))

    async def audit_entries(self, query: AuditQuery) -> list[AuditEntry]:
        return await self.runner.read(partial(audit_entries, query=query))

    async def prune_audit(self, older_than: float) -> int:
        return await self.runner.write(partial(prune_audit, older_than=older_than))
