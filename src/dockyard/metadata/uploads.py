"""Records of uploads in flight: where each one stands, and completing one into a blob link.

Every statement is built once: a push's bookkeeping would otherwise be mostly statement
building. The records are written without waiting for the disk (`durable=False`): a power cut
may forget one, and its client starts the upload again.
"""

from __future__ import annotations

from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.base import UploadRecord
from dockyard.metadata.blob_links import link_blob
from dockyard.metadata.quotas import namespace_of
from dockyard.metadata.statements import RepositoryIds

INSERT_UPLOAD = sa.insert(t.uploads)
DELETE_UPLOAD = sa.delete(t.uploads).where(t.uploads.c.id == sa.bindparam("upload_id"))
ADVANCE_UPLOAD = (
    sa.update(t.uploads)
    .where(
        t.uploads.c.id == sa.bindparam("upload_id"), t.uploads.c.size == sa.bindparam("old_size")
    )
    .values(
        size=sa.bindparam("new_size"), updated_at=sa.bindparam("now"), pieces=sa.bindparam("pieces")
    )
)
UPLOADS = sa.select(
    t.uploads.c.id,
    t.repositories.c.name,
    t.uploads.c.size,
    t.uploads.c.created_at,
    t.uploads.c.updated_at,
    t.uploads.c.pieces,
).join(t.repositories)
GET_UPLOAD = UPLOADS.where(t.uploads.c.id == sa.bindparam("upload_id"))


def create_upload(
    conn: Connection, ids: RepositoryIds, upload_id: str, repository: str, now: float
) -> None:
    repo_id = ids.ensure(conn, repository)
    direct.execute(
        conn,
        INSERT_UPLOAD,
        {
            "id": upload_id,
            "repository_id": repo_id,
            "size": 0,
            "created_at": now,
            "updated_at": now,
        },
    )


def get_upload(conn: Connection, upload_id: str) -> UploadRecord | None:
    row = direct.execute(conn, GET_UPLOAD, {"upload_id": upload_id}).first()
    return UploadRecord(*row) if row else None


def advance_upload(
    conn: Connection, upload_id: str, old: int, new: int, now: float, pieces: str | None
) -> bool:
    result = direct.execute(
        conn,
        ADVANCE_UPLOAD,
        {"upload_id": upload_id, "old_size": old, "new_size": new, "now": now, "pieces": pieces},
    )
    moved: bool = result.rowcount == 1
    return moved


def delete_upload(conn: Connection, upload_id: str) -> None:
    direct.execute(conn, DELETE_UPLOAD, {"upload_id": upload_id})


def complete_upload(
    conn: Connection, ids: RepositoryIds, upload_id: str, repository: str, digest: str, size: int
) -> None:
    link_blob(conn, ids, repository, digest, size)
    delete_upload(conn, upload_id)


def expired_uploads(conn: Connection, before: float) -> list[UploadRecord]:
    rows = conn.execute(UPLOADS.where(t.uploads.c.updated_at < before))
    return [UploadRecord(*row) for row in rows]


class SQLUploads(SQLAggregate):
    async def create_upload(self, upload_id: str, repository: str, now: float) -> None:
        await self.runner.write(
            partial(
                create_upload, ids=self.ids, upload_id=upload_id, repository=repository, now=now
            ),
            durable=False,
            turn=namespace_of(repository),
        )

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        return await self.runner.read(partial(get_upload, upload_id=upload_id), inline=True)

    async def advance_upload(
        self, upload_id: str, old: int, new: int, now: float, pieces: str | None = None
    ) -> bool:
        return await self.runner.write(
            partial(advance_upload, upload_id=upload_id, old=old, new=new, now=now, pieces=pieces),
            durable=False,
        )

    async def delete_upload(self, upload_id: str) -> None:
        await self.runner.write(partial(delete_upload, upload_id=upload_id), durable=False)

    async def complete_upload(
        self, upload_id: str, repository: str, digest: str, size: int
    ) -> None:
        await self.runner.write(
            partial(
                complete_upload,
                ids=self.ids,
                upload_id=upload_id,
                repository=repository,
                digest=digest,
                size=size,
            ),
            turn=namespace_of(repository),
        )

    async def expired_uploads(self, before: float) -> list[UploadRecord]:
        return await self.runner.read(partial(expired_uploads, before=before))
