"""Lookups by key answered from memory (`read(..., key=...)`): never a stale answer.

SQLite's runner remembers keyed lookups for as long as `PRAGMA data_version` says no other
connection committed; PostgreSQL's never remembers. Each test changes what a remembered lookup
read, through every way a change can arrive, and checks the next lookup sees it at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import sqlalchemy as sa

from dockyard.metadata import schema as t
from dockyard.metadata.base import SignaturePolicy
from dockyard.metadata.postgres_runner import PostgresRunner
from dockyard.metadata.sql import SQLMetadataStore
from dockyard.metadata.sqlite_runner import RECALLED_MAX
from tests.stores.test_metadata_store import D1, D2, record


def test_a_remembered_tag_follows_every_change_made_through_the_store(meta, run) -> None:
    run(meta.put_manifest("mem/app", record(D1), [], ["latest"]))
    for _ in range(3):  # remembered, where the runner remembers
        assert run(meta.resolve_tag("mem/app", "latest")).digest == D1
    run(meta.put_manifest("mem/app", record(D2), [], ["latest"]))
    assert run(meta.resolve_tag("mem/app", "latest")).digest == D2
    assert run(meta.get_manifest("mem/app", D2)) is not None
    assert run(meta.delete_manifest("mem/app", D2)) is True
    assert run(meta.resolve_tag("mem/app", "latest")) is None
    assert run(meta.get_manifest("mem/app", D2)) is None


def test_a_remembered_lookup_sees_a_change_committed_by_another_process(tmp_path, run) -> None:
    """Two stores on one file stand for two server processes (workers, `dockyard gc`)."""
    path = tmp_path / "metadata.db"
    serving = SQLMetadataStore.open_sqlite(path)
    other = SQLMetadataStore.open_sqlite(path)
    try:
        run(other.put_manifest("mem/app", record(D1), [], ["latest"]))
        run(other.link_blob("mem/app", D2, 7))
        assert run(serving.resolve_tag("mem/app", "latest")).digest == D1
        assert run(serving.linked_blob_size("mem/app", D2)) == 7
        assert run(serving.signature_policy_and_manifest("mem/app", None)) == (None, None)
        run(other.put_manifest("mem/app", record(D2), [], ["latest"]))
        assert run(serving.resolve_tag("mem/app", "latest")).digest == D2
        assert run(other.unlink_blob("mem/app", D2)) is True
        assert run(serving.linked_blob_size("mem/app", D2)) is None
        policy = SignaturePolicy("mem", "enforce", ("KEY",), (), "v1")
        run(other.set_signature_policy(policy))
        found, _ = run(serving.signature_policy_and_manifest("mem/app", None))
        assert found is not None and found.mode == "enforce"
        run(other.remove_signature_policy("mem"))
        assert run(serving.signature_policy_and_manifest("mem/app", None)) == (None, None)
    finally:
        run(serving.close())
        run(other.close())


def test_a_commit_landing_while_a_lookup_runs_is_not_remembered_past_it(tmp_path, run) -> None:
    """The lookup read the old rows; a commit landed before it finished. What it returned was
    true when it read it, but the next lookup must read again. (SQLite only: PostgreSQL's
    runner remembers nothing.)"""
    path = tmp_path / "metadata.db"
    meta = SQLMetadataStore.open_sqlite(path)
    runner = meta.runner

    def insert(name: str):  # type: ignore[no-untyped-def]
        return lambda conn: conn.execute(
            sa.insert(t.repositories).values(name=name, created_at=1.0)
        )

    landed: list[bool] = []

    def names_then_a_commit_elsewhere(conn) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
        names = tuple(conn.execute(sa.select(t.repositories.c.name).order_by("name")).scalars())
        if not landed:
            landed.append(True)
            with sqlite3.connect(path, isolation_level=None) as other:
                other.execute("INSERT INTO repositories (name, created_at) VALUES ('mem/b', 2)")
        return names

    try:
        run(runner.write(insert("mem/a")))
        key = ("test names",)
        assert run(runner.read(names_then_a_commit_elsewhere, inline=True, key=key)) == ("mem/a",)
        assert run(runner.read(names_then_a_commit_elsewhere, inline=True, key=key)) == (
            "mem/a",
            "mem/b",
        )
    finally:
        run(meta.close())


def test_remembered_lookups_stay_bounded(tmp_path, run) -> None:
    meta = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    try:
        for n in range(RECALLED_MAX + 10):
            run(meta.resolve_tag("mem/app", f"t{n}"))
        assert len(meta.runner._local.recalled) <= RECALLED_MAX
    finally:
        run(meta.close())


def test_a_commit_seen_through_another_channel_is_seen_by_the_next_lookup(tmp_path, run) -> None:
    """A process learns of another's commit without its event loop: a lock file the other let
    go after committing (the pull-through cache's leader links a blob, then releases its lock;
    a follower that finds the lock free looks for the link). Within one turn of the loop, the
    next lookup must see that commit (a data version read once per turn did not: a follower
    cut off its client's last bytes in CI)."""
    path = tmp_path / "metadata.db"
    serving = SQLMetadataStore.open_sqlite(path)
    try:
        run(serving.put_manifest("mem/app", record(D1), [], ["latest"]))

        async def link_elsewhere() -> None:
            other = SQLMetadataStore.open_sqlite(path)
            try:
                await other.link_blob("mem/app", D2, 9)
            finally:
                await other.close()

        async def look_commit_look() -> tuple[int | None, int | None]:
            before = await serving.linked_blob_size("mem/app", D2)
            # Another process commits now: its own loop in a thread, joined without yielding
            # this loop's turn.
            done = threading.Thread(target=lambda: asyncio.run(link_elsewhere()))
            done.start()
            done.join()
            return before, await serving.linked_blob_size("mem/app", D2)

        assert run(look_commit_look()) == (None, 9)
    finally:
        run(serving.close())


def test_the_stores_version_moves_with_every_commit_wherever_it_was_made(meta, run) -> None:
    """`version()` is what an answer remembered above the store stands on (`api.hot_reads`):
    equal read after read while nothing changed, different after any commit, by this store or
    by another process on the same file. PostgreSQL's store cannot tell, and says so (None)."""
    if meta.runner.version() is None:
        assert isinstance(meta.runner, PostgresRunner)
        return
    path = meta.runner.engine.url.database
    other = SQLMetadataStore.open_sqlite(Path(path))
    try:
        run(meta.put_manifest("mem/app", record(D1), [], ["latest"]))
        first = meta.version()
        assert meta.version() == first
        assert run(meta.resolve_tag("mem/app", "latest")).digest == D1
        assert meta.version() == first  # a read changes nothing
        run(other.link_blob("mem/app", D2, 7))  # another process
        second = meta.version()
        assert second != first
        run(meta.link_blob("mem/app", D1, 7))  # this store's own writer
        assert meta.version() != second
        with sqlite3.connect(path, isolation_level=None) as raw:  # any connection at all
            third = meta.version()
            raw.execute("DELETE FROM tags")
        assert meta.version() != third
    finally:
        run(other.close())
