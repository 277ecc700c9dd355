"""SQLite writes that arrive together share one transaction, and each still stands alone."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dockyard.core.errors import StorageFullError
from dockyard.metadata import schema as t
from dockyard.metadata.sql import SQLMetadataStore


@pytest.fixture
def store(tmp_path: Path, run):
    store = SQLMetadataStore.open_sqlite(tmp_path / "meta.db")
    yield store
    run(store.close())


def counting_batches(store: SQLMetadataStore) -> list[int]:
    sizes: list[int] = []
    real = store.runner._run_batch

    def run_batch(batch):
        sizes.append(len(batch))
        return real(batch)  # True: it tells the callers once their commit is durable

    store.runner._group.run_batch = run_batch
    return sizes


def test_writes_arriving_together_share_commits_and_all_land(store, run) -> None:
    sizes = counting_batches(store)

    async def push(i: int) -> None:
        await store.create_upload(f"{i:032x}", f"group/repo-{i % 3}", 1.0)
        await store.complete_upload(f"{i:032x}", f"group/repo-{i % 3}", f"sha256:{i:064x}", i)

    async def all_of_them() -> None:
        await asyncio.gather(*(push(i) for i in range(40)))

    run(all_of_them())
    assert sum(sizes) == 80
    assert len(sizes) < 80 and max(sizes) > 1, sizes  # some commits carried several writes
    for i in range(40):
        assert run(store.linked_blob_size(f"group/repo-{i % 3}", f"sha256:{i:064x}")) == i
        assert run(store.get_upload(f"{i:032x}")) is None


def test_a_failing_write_fails_alone_and_leaves_nothing(store, run) -> None:
    sizes = counting_batches(store)

    def half_then_fail(conn) -> None:
        conn.execute(sa.insert(t.repositories).values(name="group/ghost", created_at=1.0))
        raise ValueError("changed its mind")

    async def together() -> list[object]:
        first = asyncio.ensure_future(store.runner.write(lambda conn: time.sleep(0.3)))
        await asyncio.sleep(0.05)  # the first transaction is under way: the rest queue
        return await asyncio.gather(
            store.create_upload("a" * 32, "group/one", 1.0),
            store.runner.write(half_then_fail),
            store.create_upload("b" * 32, "group/two", 1.0),
            first,
            return_exceptions=True,
        )

    outcomes = run(together())
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], ValueError)
    assert sizes == [1, 3], "the three writes went in one transaction"
    assert run(store.get_upload("a" * 32)) is not None
    assert run(store.get_upload("b" * 32)) is not None
    ghost = run(
        store.runner.read(
            lambda conn: conn.execute(
                sa.select(t.repositories.c.id).where(t.repositories.c.name == "group/ghost")
            ).first()
        )
    )
    assert ghost is None, "the failed write's own changes were rolled back"


def test_a_commit_that_fails_fails_every_write_in_it(store, run, monkeypatch) -> None:
    """A full disk at commit: nobody is told their write landed, and nothing did."""
    import sqlite3

    real_begin = store.runner._run_batch

    def full_at_commit(batch):
        def fail_commit(self, *a, **k):
            raise sa.exc.OperationalError(
                "COMMIT", {}, sqlite3.OperationalError("database or disk is full")
            )

        monkeypatch.setattr(sa.engine.Connection, "_commit_impl", fail_commit)
        try:
            return real_begin(batch)
        finally:
            monkeypatch.undo()

    store.runner._group.run_batch = full_at_commit

    async def together() -> list[object]:
        first = asyncio.ensure_future(store.runner.write(lambda conn: time.sleep(0.3)))
        await asyncio.sleep(0.05)
        return await asyncio.gather(
            first,
            store.create_upload("c" * 32, "group/three", 1.0),
            store.create_upload("d" * 32, "group/four", 1.0),
            return_exceptions=True,
        )

    outcomes = run(together())
    assert all(isinstance(o, StorageFullError) for o in outcomes), outcomes
    store.runner._group.run_batch = store.runner._run_batch
    assert run(store.get_upload("c" * 32)) is None
    assert run(store.get_upload("d" * 32)) is None
    # Space again: the next writes work, on a fresh connection.
    run(store.create_upload("e" * 32, "group/five", 1.0))
    assert run(store.get_upload("e" * 32)) is not None


def test_a_caller_that_goes_away_does_not_take_its_write_out_of_the_batch(store, run) -> None:
    async def scenario() -> None:
        first = asyncio.ensure_future(store.runner.write(lambda conn: time.sleep(0.2)))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(store.create_upload("f" * 32, "group/six", 1.0))
        await asyncio.sleep(0.01)
        gone.cancel()  # the client hung up while its write waited in the queue
        await first
        await asyncio.sleep(0.05)

    run(scenario())
    assert run(store.get_upload("f" * 32)) is not None
