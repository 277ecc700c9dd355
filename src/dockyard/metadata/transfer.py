"""Every row of every table, out of one database and into another (`dockyard migrate`).

Keys are kept, so the rows are inserted parents before children and foreign keys hold at every
insert; the target must be empty. PostgreSQL's id sequences then start past the copied ids.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.statements import RepositoryIds

# Parents before children, so foreign keys hold at every insert.
TABLE_ORDER = (
    "repositories",
    "blobs",
    "repository_blobs",
    "manifests",
    "manifest_references",
    # Before the tags, whose insert triggers then see each tag's newest entry and add none.
    "tag_history",
    "tags",
    "accounts",
    "memberships",
    "access_tokens",
    "repository_settings",
    "cached_tags",
    "secrets",
    "tag_versions",
    "listing_versions",
    "gc_queue",
    "immutable_tag_rules",
    "namespace_quotas",
    "retention_policies",
    "repository_info",
    "signature_policies",
    "webhooks",
    "webhook_state",
    "event_outbox",
    "webhook_deliveries",
    "audit_log",
)
# `namespace_blobs` and `namespace_usage` are not copied: the target's triggers count the
# content as it is inserted.

Rows = dict[str, list[dict[str, Any]]]


def export_rows(conn: Connection) -> Rows:
    return {
        name: [dict(row._mapping) for row in conn.execute(sa.select(t.metadata.tables[name]))]
        for name in TABLE_ORDER
    }


def import_rows(conn: Connection, ids: RepositoryIds, rows: Rows) -> dict[str, int]:
    for name in TABLE_ORDER:
        table = t.metadata.tables[name]
        if conn.execute(sa.select(sa.func.count()).select_from(table)).scalar():
            raise ValueError(f"the target database already has {name}; migrate into an empty one")
    for name in TABLE_ORDER:
        if rows.get(name):
            conn.execute(sa.insert(t.metadata.tables[name]), rows[name])
    if conn.dialect.name == "postgresql":
        for name in (
            "repositories",
            "accounts",
            "gc_queue",
            "tag_history",
            "webhooks",
            "event_outbox",
            "webhook_deliveries",
            "audit_log",
        ):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {name}), 0) + 1, false)"
            )
    ids.forget()
    return {name: len(rows.get(name, [])) for name in TABLE_ORDER}


class SQLTransfer(SQLAggregate):
    TABLE_ORDER = TABLE_ORDER

    async def export_rows(self) -> Rows:
        return await self.runner.read(export_rows)

    async def import_rows(self, rows: Rows) -> dict[str, int]:
        """All rows in one transaction, keys kept; refuses a database that holds data."""
        return await self.runner.write(partial(import_rows, ids=self.ids, rows=rows))
