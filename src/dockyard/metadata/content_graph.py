"""The whole content graph read in one snapshot, for consistency checks (`dockyard fsck`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.base import ContentGraph


def _edges(conn: Connection, table: sa.Table, *columns: sa.Column[Any]) -> list[Any]:
    """(repository name, *columns) of every row of `table`, sorted."""
    repos = t.repositories
    query = sa.select(repos.c.name, *columns).join(repos, repos.c.id == table.c.repository_id)
    return [tuple(row) for row in conn.execute(query.order_by(*query.selected_columns))]


def content_graph(conn: Connection) -> ContentGraph:
    refs = t.manifest_references
    return ContentGraph(
        links=_edges(conn, t.repository_blobs, t.repository_blobs.c.digest),
        manifests=_edges(conn, t.manifests, t.manifests.c.digest),
        references=_edges(conn, refs, refs.c.manifest_digest, refs.c.target_digest, refs.c.kind),
        tags=_edges(conn, t.tags, t.tags.c.name, t.tags.c.manifest_digest),
    )


class SQLContentGraph(SQLAggregate):
    async def content_graph(self) -> ContentGraph:
        return await self.runner.read(content_graph)
