"""SQLite's durable writes: acknowledged only after the WAL was synced since their commit, a
sync taken outside the write lock (so other writers never wait for the disk) and shared by
every commit written before it started."""

from __future__ import annotations

import asyncio
import errno
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dockyard.metadata import wal_sync
from dockyard.metadata.sql import SQLMetadataStore

# Generous: the CI machine runs three test processes, servers and peers on two cores.
PATIENCE_SECONDS = 60


@pytest.fixture
def store(tmp_path: Path, run):
    store = SQLMetadataStore.open_sqlite(tmp_path / "meta.db")
    run(store.runner.write(lambda conn: conn.execute(sa.text("CREATE TABLE scratch (n INTEGER)"))))
    yield store
    run(store.close())


class HeldSyncs:
    """WAL syncs that wait for `release` (bounded), counted as they start."""

    def __init__(self) -> None:
        self.started = 0
        self.release = threading.Event()
        self._real = wal_sync.sync_file

    def __call__(self, path: str) -> None:
        self.started += 1
        assert self.release.wait(PATIENCE_SECONDS), "the test never let the sync go"
        self._real(path)


def insert(n: int):  # type: ignore[no-untyped-def]
    return lambda conn: conn.execute(sa.text("INSERT INTO scratch VALUES (:n)"), {"n": n})


def visible(path: Path) -> set[int]:
    """What a connection of its own sees committed (durable or not)."""
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(sa.text("SELECT n FROM scratch"))}
    finally:
        engine.dispose()


async def until(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.01)


def test_a_durable_write_waits_for_its_sync_and_other_writers_do_not(
    store, run, monkeypatch, tmp_path
) -> None:
    held = HeldSyncs()
    monkeypatch.setattr(wal_sync, "sync_file", held)
    before = store.runner.wal_syncs

    async def scenario() -> None:
        durable = asyncio.ensure_future(store.runner.write(insert(1)))
        await until(lambda: held.started == 1, "the durable write's sync started")
        assert 1 in visible(tmp_path / "meta.db")  # committed ...
        assert not durable.done(), "acknowledged before the WAL was synced"  # ... not told
        # The write lock is free while the disk syncs: a write that needs no sync lands now.
        await asyncio.wait_for(
            store.runner.write(insert(2), durable=False), timeout=PATIENCE_SECONDS
        )
        assert not durable.done()
        held.release.set()
        await durable

    run(scenario())
    assert visible(tmp_path / "meta.db") == {1, 2}
    assert store.runner.wal_syncs == before + 1


def test_commits_made_during_a_sync_share_the_next_one(store, run, monkeypatch, tmp_path) -> None:
    held = HeldSyncs()
    monkeypatch.setattr(wal_sync, "sync_file", held)
    before = store.runner.wal_syncs

    async def scenario() -> None:
        first = asyncio.ensure_future(store.runner.write(insert(0)))
        await until(lambda: held.started == 1, "the first sync started")
        rest = [asyncio.ensure_future(store.runner.write(insert(n))) for n in range(1, 9)]
        await until(lambda: len(visible(tmp_path / "meta.db")) == 9, "all nine committed")
        # Committed is not yet handed to the sync: the committer hands each batch over
        # before it looks for the next, so once it stops looking, all of them were.
        await until(lambda: not store.runner._group._draining, "every commit handed over")
        assert held.started == 1 and not any(w.done() for w in [first, *rest])
        held.release.set()
        await asyncio.gather(first, *rest)

    run(scenario())
    assert store.runner.wal_syncs == before + 2, "eight commits made during a sync share one"


def test_a_failed_sync_fails_the_writes_it_covers(store, run, monkeypatch) -> None:
    def failing(path: str) -> None:
        raise OSError(errno.EIO, "I/O error", path)

    monkeypatch.setattr(wal_sync, "sync_file", failing)
    with pytest.raises(OSError):
        run(store.runner.write(insert(7)))
    run(store.runner.write(insert(8), durable=False))  # no sync needed: told at once
