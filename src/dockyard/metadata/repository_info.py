"""A repository's description and README: what its owners write about it for its page.

Kept by repository id, like its visibility, and only for a repository with content: one that
holds nothing is unknown to clients (`catalog`), so it has nothing to describe. Deleting the
repository (`repository_removal`) or its namespace drops the row with the rest.
"""

from __future__ import annotations

from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.base import RepositoryInfo
from dockyard.metadata.statements import HAS_CONTENT, RepositoryIds


def _has_content(conn: Connection, repo_id: int) -> bool:
    return bool(direct.execute(conn, HAS_CONTENT, {"repo_id": repo_id}).scalar())


def repository_info(conn: Connection, ids: RepositoryIds, repository: str) -> RepositoryInfo | None:
    repo_id = ids.lookup(conn, repository)
    if repo_id is None or not _has_content(conn, repo_id):
        return None
    row = conn.execute(
        sa.select(
            t.repository_info.c.description,
            t.repository_info.c.readme,
            t.repository_info.c.updated_at,
        ).where(t.repository_info.c.repository_id == repo_id)
    ).first()
    if row is None:
        return RepositoryInfo()
    return RepositoryInfo(row.description, row.readme, row.updated_at)


def set_repository_info(
    conn: Connection,
    ids: RepositoryIds,
    repository: str,
    description: str | None,
    readme: str | None,
    now: float,
) -> RepositoryInfo | None:
    current = repository_info(conn, ids, repository)
    if current is None:
        return None
    repo_id = ids.lookup(conn, repository)
    assert repo_id is not None  # `repository_info` found it
    updated = RepositoryInfo(
        current.description if description is None else description,
        current.readme if readme is None else readme,
        now,
    )
    # Read and written in one transaction, which both runners serialise: of two concurrent
    # edits of different fields, neither undoes the other. Delete and insert: one spelling of
    # an upsert on both databases.
    conn.execute(sa.delete(t.repository_info).where(t.repository_info.c.repository_id == repo_id))
    conn.execute(
        sa.insert(t.repository_info).values(
            repository_id=repo_id,
            description=updated.description,
            readme=updated.readme,
            updated_at=now,
        )
    )
    return updated


class SQLRepositoryInfo(SQLAggregate):
    async def repository_info(self, repository: str) -> RepositoryInfo | None:
        return await self.runner.read(partial(repository_info, ids=self.ids, repository=repository))

    async def set_repository_info(
        self, repository: str, description: str | None, readme: str | None, now: float
    ) -> RepositoryInfo | None:
        return await self.runner.write(
            partial(
                set_repository_info,
                ids=self.ids,
                repository=repository,
                description=description,
                readme=readme,
                now=now,
            )
        )
