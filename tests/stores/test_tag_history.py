"""Tag history on every database: the triggers of revision 0013 record each creation, move and
deletion of a tag, whatever removes it, and keep the newest entries of each tag."""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dockyard.metadata import schema as t
from dockyard.metadata.base import TagChange
from dockyard.metadata.migrate import upgrade, upgrade_async
from dockyard.metadata.schema import TAG_HISTORY_KEPT
from dockyard.metadata.tag_pages import tag_history
from tests.stores.test_repository_pages import digest, push


def history(meta, run, repository: str, tag: str) -> list[str | None]:
    return [change.digest for change in run(meta.tag_history(repository, tag))]


def test_pushes_moves_and_deletes_are_recorded_newest_first(meta, run) -> None:
    assert history(meta, run, "acme/app", "v1") == []
    push(meta, run, "acme/app", digest(10), ["v1", "latest"])
    push(meta, run, "acme/app", digest(10), ["v1"])  # the same again: no new entry
    push(meta, run, "acme/app", digest(11), ["latest"])
    assert history(meta, run, "acme/app", "v1") == [digest(10)]
    assert history(meta, run, "acme/app", "latest") == [digest(11), digest(10)]
    changes = run(meta.tag_history("acme/app", "latest"))
    assert changes[0].at >= changes[1].at > 0
    assert run(meta.delete_tag("acme/app", "latest"))
    assert history(meta, run, "acme/app", "latest") == [None, digest(11), digest(10)]
    # A manifest deleted by digest takes its tags with it: recorded too.
    assert run(meta.delete_manifest("acme/app", digest(10)))
    assert history(meta, run, "acme/app", "v1") == [None, digest(10)]
    # Each repository its own history.
    push(meta, run, "acme/other", digest(12), ["v1"])
    assert history(meta, run, "acme/other", "v1") == [digest(12)]
    assert history(meta, run, "acme/app", "v1") == [None, digest(10)]


def test_the_history_outlives_the_repository(meta, run) -> None:
    push(meta, run, "gone/app", digest(20), ["v1"])
    assert run(meta.delete_repository("gone/app")) is not None
    assert history(meta, run, "gone/app", "v1") == [None, digest(20)]
    push(meta, run, "gone/app", digest(21), ["v1"])
    assert history(meta, run, "gone/app", "v1") == [digest(21), None, digest(20)]


def test_only_the_newest_entries_of_a_tag_are_kept(meta, run) -> None:
    for n in range(TAG_HISTORY_KEPT + 5):
        push(meta, run, "busy/app", digest(1000 + n), ["latest", f"v{n}"])
    kept = history(meta, run, "busy/app", "latest")
    assert kept == [digest(1000 + n) for n in reversed(range(5, TAG_HISTORY_KEPT + 5))]
    assert history(meta, run, "busy/app", "v0") == [digest(1000)]


def _old_rows(conn: sa.Connection) -> None:
    conn.execute(sa.insert(t.repositories).values(id=7, name="old/app", created_at=1.0))
    conn.execute(
        sa.insert(t.manifests).values(
            repository_id=7, digest=digest(5), media_type="x", size=1, created_at=1.0
        )
    )
    conn.execute(
        sa.insert(t.tags).values(
            repository_id=7, name="v1", manifest_digest=digest(5), updated_at=2.0
        )
    )


def _check_upgraded(conn: sa.Connection) -> None:
    assert tag_history(conn, "old/app", "v1") == [TagChange(digest(5), 2.0)]
    conn.execute(sa.delete(t.tags).where(t.tags.c.name == "v1"))
    assert [c.digest for c in tag_history(conn, "old/app", "v1")] == [None, digest(5)]


def test_upgrading_a_sqlite_database_starts_the_history_of_its_tags(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        upgrade(engine, "0010")
        with engine.begin() as conn:
            _old_rows(conn)
        upgrade(engine)
        with engine.begin() as conn:
            _check_upgraded(conn)
    finally:
        engine.dispose()


def test_upgrading_a_postgres_database_starts_the_history_of_its_tags(pg_cluster) -> None:
    url = pg_cluster.create_database().replace("postgresql://", "postgresql+asyncpg://", 1)

    async def go() -> None:
        engine = create_async_engine(url)
        try:
            await upgrade_async(engine, "0010")
            async with engine.begin() as conn:
                await conn.run_sync(_old_rows)
            await upgrade_async(engine)
            async with engine.begin() as conn:
                await conn.run_sync(_check_upgraded)
        finally:
            await engine.dispose()

    asyncio.run(go())
