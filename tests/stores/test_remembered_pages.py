"""Tag-list and catalog pages remembered until the next commit anywhere, never past it.

SQLite's runner answers a page it read before from memory while `PRAGMA data_version` has not
moved (`read(..., key=..., sized=True)`); PostgreSQL's reads every time. Each test checks that a
page read again costs no transaction, and that every way a change can arrive (this store,
another process, a commit landing while a page is read on a pool thread) is seen at once.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from dockyard.metadata import schema as t
from dockyard.metadata import sqlite_runner
from dockyard.metadata.sql import SQLMetadataStore
from dockyard.metadata.sqlite_runner import SQLiteRunner
from dockyard.service.listing import MAX_PAGE, ListingService
from tests.stores.test_listing_pages import B1, M1, M2, manifest


def reads_of(meta: SQLMetadataStore) -> list[str]:
    """The transactions the runner reports from now on."""
    seen: list[str] = []
    meta.runner.observe(lambda kind, _seconds, _retries: seen.append(kind))
    return seen


def test_a_page_read_again_is_no_transaction_until_something_commits(tmp_path, run) -> None:
    meta = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    listing = ListingService(meta)
    try:
        run(meta.put_manifest("app", manifest(M1), [], [f"t{i:04d}" for i in range(1_500)]))
        run(meta.link_blob("other", B1, 5))
        seen = reads_of(meta)
        # a page on the loop, the whole list on a pool thread (longer than INLINE_PAGE), the
        # catalog: each read once, then answered from memory
        asks = (
            lambda: listing.tags("app", 100, "t0500"),
            lambda: listing.tags("app", None, None),
            lambda: listing.catalog(None, None),
            lambda: listing.catalog(1, None),
        )
        first = [run(ask()) for ask in asks]
        assert seen.count("read") == len(asks)
        again = [run(ask()) for ask in asks]
        assert seen.count("read") == len(asks), "read again though nothing committed"
        assert again == first
        assert len(first[1].items) == 1_500 and first[2].items == ["app", "other"]
        # each caller gets a list of its own: changing it changes nobody else's page
        again[1].items.clear()
        assert run(asks[1]()).items == first[1].items

        run(meta.put_manifest("app", manifest(M2), [], ["t0500a"]))
        assert "t0500a" in run(asks[0]()).items
        assert len(run(asks[1]()).items) == 1_501
        assert seen.count("read") == len(asks) + 2
    finally:
        run(meta.close())


def test_a_remembered_page_sees_a_change_committed_by_another_process(tmp_path, run) -> None:
    """Two stores on one file stand for two server processes (workers, `dockyard gc`)."""
    path = tmp_path / "metadata.db"
    serving, other = SQLMetadataStore.open_sqlite(path), SQLMetadataStore.open_sqlite(path)
    listing = ListingService(serving)
    try:
        run(other.put_manifest("app", manifest(M1), [], ["v1"]))
        for _ in range(2):
            assert run(listing.tags("app", None, None)).items == ["v1"]
            assert run(listing.catalog(10, None)).items == ["app"]
        run(other.put_manifest("app", manifest(M2), [], ["v2"]))
        run(other.link_blob("base", B1, 5))
        assert run(listing.tags("app", None, None)).items == ["v1", "v2"]
        assert run(listing.catalog(10, None)).items == ["app", "base"]
        assert run(other.delete_tag("app", "v1"))
        assert run(other.unlink_blob("base", B1))
        assert run(listing.tags("app", None, None)).items == ["v2"]
        assert run(listing.catalog(10, None)).items == ["app"]
    finally:
        run(serving.close())
        run(other.close())


def test_a_page_read_on_a_thread_while_a_newer_version_was_seen_is_not_kept(tmp_path, run) -> None:
    """A large page is read on a pool thread; meanwhile a commit lands and another request on
    the loop sees the new version. The page, read before the commit, must not be remembered
    as if it were of the new version."""
    path = tmp_path / "metadata.db"
    meta = SQLMetadataStore.open_sqlite(path)
    runner = meta.runner
    read, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def names(conn: Any) -> tuple[str, ...]:
        found = tuple(conn.execute(sa.select(t.repositories.c.name).order_by("name")).scalars())
        calls.append(1)
        if len(calls) == 1:
            read.set()
            assert release.wait(10)
        return found

    async def scenario() -> tuple[str, ...]:
        key = ("test page",)
        slow = asyncio.ensure_future(runner.read(names, key=key, sized=True))
        while not read.is_set():
            await asyncio.sleep(0.005)
        with sqlite3.connect(path, isolation_level=None) as elsewhere:
            elsewhere.execute("INSERT INTO repositories (name, created_at) VALUES ('mem/b', 2)")
        await runner.read(lambda conn: None, inline=True, key=("another lookup",))
        release.set()
        assert await slow == ("mem/a",)
        return await runner.read(names, key=key, sized=True)

    try:
        run(
            runner.write(
                lambda conn: conn.execute(
                    sa.insert(t.repositories).values(name="mem/a", created_at=1.0)
                )
            )
        )
        assert run(scenario()) == ("mem/a", "mem/b")
        assert len(calls) == 2
    finally:
        release.set()
        run(meta.close())


def test_remembered_pages_stay_bounded_by_their_names(tmp_path, run, monkeypatch) -> None:
    monkeypatch.setattr(sqlite_runner, "RECALLED_ITEMS_MAX", 50)
    meta = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    listing = ListingService(meta)
    try:
        run(meta.put_manifest("app", manifest(M1), [], [f"t{i:03d}" for i in range(100)]))
        seen = reads_of(meta)
        for last in range(60):
            run(listing.tags("app", 5, f"t{last:03d}"))
            assert meta.runner._local.recalled_items <= 50
        assert len(meta.runner._local.recalled_sized) <= 50 // 6
        # a page longer than the bound is never remembered, so never evicts the rest
        for _ in range(2):
            assert len(run(listing.tags("app", MAX_PAGE, None)).items) == 100
        assert seen.count("read") == 62
        # the keyed lookups of pulls have a bound of their own: pages never evict them
        assert run(meta.resolve_tag("app", "t000")) is not None
        for last in range(20):
            run(listing.tags("app", 5, f"t{last:03d}"))
        assert run(meta.resolve_tag("app", "t000")) is not None
        assert seen.count("read") == 62 + 1 + 20
    finally:
        run(meta.close())


def test_a_catalog_page_visibilities_follow_every_change(meta, run, tmp_path) -> None:
    """Asked with every catalog page by every caller, remembered as the page is: each name
    asked is in the answer (None: no setting of its own), and a change counts at once."""
    for repo in ("acme/a", "acme/b", "acme/c"):
        run(meta.link_blob(repo, B1, 5))
    names = ["acme/a", "acme/b", "acme/c", "acme/absent"]
    seen = reads_of(meta)
    for _ in range(2):
        assert dict(run(meta.accounts.visibilities(names))) == dict.fromkeys(names)
    assert seen.count("read") == (1 if isinstance(meta.runner, SQLiteRunner) else 2)
    run(meta.accounts.set_visibility("acme/b", "public"))
    assert dict(run(meta.accounts.visibilities(names))) == {
        **dict.fromkeys(names),
        "acme/b": "public",
    }
    run(meta.accounts.set_visibility("acme/b", "private"))
    run(meta.accounts.set_visibility("acme/a", "public"))
    assert dict(run(meta.accounts.visibilities(names))) == {
        **dict.fromkeys(names),
        "acme/a": "public",
        "acme/b": "private",
    }
    found = run(meta.accounts.visibilities(names))
    with pytest.raises(TypeError):
        found["acme/c"] = "public"  # shared between callers: read only
