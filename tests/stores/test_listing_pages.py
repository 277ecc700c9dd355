"""Tag lists and the catalog are read a page at a time from an index, on every metadata
backend: each process sees every change at once (a page is remembered only until the next
commit, `test_remembered_pages.py`), and a page reads its own rows — the plan says so (an
index range, no sort) and the work does not grow with the list."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata import catalog
from dockyard.metadata.base import ManifestRecord
from dockyard.metadata.sql import SQLMetadataStore
from dockyard.metadata.sqlite_runner import SQLiteRunner
from dockyard.service.listing import ListingService

M1 = "sha256:" + "a" * 64
M2 = "sha256:" + "b" * 64
B1 = "sha256:" + "c" * 64
PAGE = 100


def manifest(digest: str) -> ManifestRecord:
    return ManifestRecord(
        digest=digest, media_type="application/vnd.oci.image.manifest.v1+json", size=10
    )


def test_tag_lists_follow_every_change(meta, run) -> None:
    one, other = ListingService(meta), ListingService(meta)  # two server processes

    def tags(listing: ListingService) -> list[str]:
        return run(listing.tags("app", None, None)).items

    run(meta.put_manifest("app", manifest(M1), [], ["v1", "latest"]))
    assert tags(one) == tags(other) == ["latest", "v1"]
    run(meta.put_manifest("app", manifest(M2), [], ["v2"]))  # a new tag
    assert tags(one) == tags(other) == ["latest", "v1", "v2"]
    run(meta.put_manifest("app", manifest(M2), [], ["latest"]))  # a tag moved
    assert tags(one) == tags(other) == ["latest", "v1", "v2"]
    assert run(meta.delete_tag("app", "v1"))
    assert tags(one) == tags(other) == ["latest", "v2"]

    run(meta.put_manifest("app", manifest(M1), [], []))  # untagged: nothing to list changes
    assert run(meta.delete_manifest("app", M2))  # takes "latest" and "v2" with it
    assert tags(one) == tags(other) == [], "a repository with content and no tag lists none"
    page = run(one.tags("app", 1, None))
    assert page.items == [] and page.next_last is None
    assert run(one.tags("app", 0, None)).items == []


def test_pages_of_a_tag_list(meta, run) -> None:
    listing = ListingService(meta)
    run(meta.put_manifest("paged", manifest(M1), [], [f"t{i:02d}" for i in range(25)]))
    first = run(listing.tags("paged", 10, None))
    assert first.items == [f"t{i:02d}" for i in range(10)] and first.next_last == "t09"
    last = run(listing.tags("paged", 10, "t19"))
    assert last.items == [f"t{i:02d}" for i in range(20, 25)] and last.next_last is None
    exact = run(listing.tags("paged", 5, "t19"))  # the page ends where the list does
    assert exact.items == [f"t{i:02d}" for i in range(20, 25)] and exact.next_last is None
    assert run(listing.tags("paged", None, None)).items == [f"t{i:02d}" for i in range(25)]
    assert run(listing.tags("paged", 10, "zzz")).items == []
    assert run(listing.tags("paged", 10, "")).items == first.items
    assert run(listing.tags("paged", 3, "t05x")).items == ["t06", "t07", "t08"]


def test_unknown_repositories_have_no_tag_list(meta, run) -> None:
    listing = ListingService(meta)
    run(meta.create_upload("u" * 32, "empty", 1.0))  # a row, but no content yet
    for name in ("empty", "never"):
        for n in (None, 0, 5):
            with pytest.raises(RegistryError) as raised:
                run(listing.tags(name, n, None))
            assert raised.value.code is ErrorCode.NAME_UNKNOWN, (name, n)


def test_the_catalog_follows_every_change(meta, run) -> None:
    one, other = ListingService(meta), ListingService(meta)

    def names(listing: ListingService) -> list[str]:
        return run(listing.catalog(None, None)).items

    assert names(one) == names(other) == []
    run(meta.create_upload("u" * 32, "empty", 1.0))  # a repository with nothing in it yet
    run(meta.link_blob("blobs/only", B1, 5))
    assert names(one) == names(other) == ["blobs/only"]
    run(meta.put_manifest("images/app", manifest(M1), [], ["v1"]))
    assert names(one) == names(other) == ["blobs/only", "images/app"]
    run(meta.complete_upload("u" * 32, "empty", B1, 5))
    assert names(one) == names(other) == ["blobs/only", "empty", "images/app"]
    assert run(meta.unlink_blob("blobs/only", B1))
    assert names(one) == names(other) == ["empty", "images/app"]
    assert run(meta.delete_manifest("images/app", M1))
    assert names(one) == names(other) == ["empty"]
    page = run(one.catalog(1, None))
    assert page.items == ["empty"] and page.next_last is None
    run(meta.link_blob("a/first", B1, 5))
    page = run(one.catalog(1, None))
    assert page.items == ["a/first"] and page.next_last == "a/first"
    assert run(one.catalog(0, None)).items == []


# -- what a page reads ---------------------------------------------------------------------------


def fill_tags(meta: SQLMetadataStore, run, repository: str, count: int) -> None:
    for low in range(0, count, 1000):
        names = [f"t-{i:06d}" for i in range(low, min(count, low + 1000))]
        run(meta.put_manifest(repository, manifest(M1), [], names))


def fill_repositories(meta: SQLMetadataStore, run, count: int, empty_every: int = 0) -> None:
    """`count` repositories holding a blob; with `empty_every`, every such one a row only."""
    for i in range(count):
        name = f"r/{i:05d}"
        if empty_every and i % empty_every == 0:
            run(meta.create_upload(f"{i:032d}", name, 1.0))
        else:
            run(meta.link_blob(name, B1, 5))


def _bound(statement: sa.Select[Any], conn: Connection, **values: Any) -> str:
    """The statement the store runs, with these values written into it."""
    return str(
        statement.params(**values).compile(
            dialect=conn.dialect, compile_kwargs={"literal_binds": True}
        )
    )


def _sqlite_plan(conn: Connection, sql: str) -> list[str]:
    return [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]


def _sqlite_steps(conn: Connection, work: Any) -> int:
    """How many virtual-machine steps SQLite took for `work()`: what it read, not how long."""
    raw = conn.connection.driver_connection
    work()  # once unmeasured: a connection's first statement reads the schema
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    raw.set_progress_handler(count, 1)
    try:
        work()
    finally:
        raw.set_progress_handler(None, 1)
    return steps


def _postgres_nodes(conn: Connection, sql: str) -> list[dict[str, Any]]:
    """Every node of the executed plan (EXPLAIN ANALYZE), outermost first."""
    raw = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + sql).scalar()
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    nodes, todo = [], [plan]
    while todo:
        node = todo.pop(0)
        nodes.append(node)
        todo += node.get("Plans", [])
    return nodes


def _rows_read(nodes: list[dict[str, Any]], table: str) -> int:
    """Rows every scan of the plan read, over all its loops (a hashed subplan reads its whole
    table once); `table`, the listing's own, must be read through an index."""
    listing = [n for n in nodes if n.get("Relation Name") == table]
    assert listing and all("Index" in n["Node Type"] for n in listing), nodes
    scans = [n for n in nodes if "Relation Name" in n]
    return sum(
        (n["Actual Rows"] + n.get("Rows Removed by Filter", 0)) * n["Actual Loops"] for n in scans
    )


def check_tags_page(meta: SQLMetadataStore, run, repo_id: int, last: str) -> int | None:
    """Asserts the tag page's plan; returns SQLite's steps for it (None on PostgreSQL)."""

    def look(conn: Connection) -> int | None:
        # PostgreSQL runs the same page with its names joined into one text (`catalog.joined`)
        stmt = catalog.TAGS_JOINED if conn.dialect.name == "postgresql" else catalog.TAGS_PAGE
        sql = _bound(stmt, conn, repo_id=repo_id, last=last, limit=PAGE + 1)
        if conn.dialect.name == "sqlite":
            plan = _sqlite_plan(conn, sql)
            assert any(
                p.startswith("SEARCH tags USING") and "(repository_id=? AND name>?)" in p
                for p in plan
            ), plan
            assert not any("TEMP B-TREE" in p for p in plan), plan
            return _sqlite_steps(conn, lambda: conn.exec_driver_sql(sql).fetchall())
        nodes = _postgres_nodes(conn, sql)
        assert not any(n["Node Type"] == "Sort" for n in nodes), nodes
        assert _rows_read(nodes, "tags") <= PAGE + 1
        return None

    return run(meta.runner.read(look))


def check_catalog_page(meta: SQLMetadataStore, run, last: str, most: int) -> int | None:
    """`most`: repository rows the page may read (each probes its manifests and links once)."""

    def look(conn: Connection) -> int | None:
        postgres = conn.dialect.name == "postgresql"
        stmt = catalog.CATALOG_JOINED if postgres else catalog.CATALOG_PAGE
        sql = _bound(stmt, conn, last=last, limit=PAGE + 1)
        if conn.dialect.name == "sqlite":
            plan = _sqlite_plan(conn, sql)
            assert any(
                p.startswith("SEARCH repositories USING") and "(name>?)" in p for p in plan
            ), plan
            assert not any("TEMP B-TREE" in p for p in plan), plan
            return _sqlite_steps(conn, lambda: conn.exec_driver_sql(sql).fetchall())
        nodes = _postgres_nodes(conn, sql)
        assert not any(n["Node Type"] == "Sort" for n in nodes), nodes
        assert _rows_read(nodes, "repositories") <= 3 * most, nodes
        return None

    return run(meta.runner.read(look))


def _repo_id(meta: SQLMetadataStore, run, name: str) -> int:
    def look(conn: Connection) -> int:
        found = meta.ids.lookup(conn, name)
        assert found is not None
        return found

    return run(meta.runner.read(look))


def _analyze(meta: SQLMetadataStore, run) -> None:
    """Fresh statistics, as a registry that grew over time has them."""
    run(meta.runner.write(lambda conn: conn.exec_driver_sql("ANALYZE")))


def test_a_tag_page_reads_its_rows_from_the_index_at_any_size(meta, run) -> None:
    fill_tags(meta, run, "small", 300)
    fill_tags(meta, run, "large", 3000)
    _analyze(meta, run)
    small, large = _repo_id(meta, run, "small"), _repo_id(meta, run, "large")
    steps = {
        "small first": check_tags_page(meta, run, small, ""),
        "large first": check_tags_page(meta, run, large, ""),
        "large middle": check_tags_page(meta, run, large, "t-001500"),
    }
    if isinstance(meta.runner, SQLiteRunner):
        assert len(set(steps.values())) == 1, steps  # the same work, ten times the tags
    listing = ListingService(meta)
    page = run(listing.tags("large", PAGE, "t-001500"))
    assert page.items == [f"t-{i:06d}" for i in range(1501, 1601)]
    assert page.next_last == "t-001600"
    assert len(run(listing.tags("large", None, None)).items) == 3000


def test_a_catalog_page_reads_its_rows_from_the_index_at_any_size(meta, run) -> None:
    sqlite = isinstance(meta.runner, SQLiteRunner)
    if sqlite:  # (PostgreSQL rightly sorts a table this small rather than walk an index)
        fill_repositories(meta, run, 150)
        small = check_catalog_page(meta, run, "", PAGE + 1)
    fill_repositories(meta, run, 1000)
    _analyze(meta, run)
    first = check_catalog_page(meta, run, "", PAGE + 1)
    middle = check_catalog_page(meta, run, "r/00500", PAGE + 1)
    if sqlite:
        assert small == first == middle, (small, first, middle)
    listing = ListingService(meta)
    page = run(listing.catalog(PAGE, "r/00500"))
    assert page.items == [f"r/{i:05d}" for i in range(501, 601)]
    assert page.next_last == "r/00600"
    assert len(run(listing.catalog(None, None)).items) == 1000


def test_repositories_without_content_are_passed_over_on_the_way(meta, run) -> None:
    # One in ten is a row without content (an upload begun, a repository deleted whole): a
    # page reads past those, and no further.
    fill_repositories(meta, run, 1000, empty_every=10)
    _analyze(meta, run)
    check_catalog_page(meta, run, "r/00500", PAGE + 1 + 12)
    page = run(ListingService(meta).catalog(PAGE, "r/00500"))
    assert len(page.items) == PAGE and all(int(n[2:]) % 10 for n in page.items)


class Recording:
    """The real store, noting what the listing service asks of it."""

    def __init__(self, store: SQLMetadataStore) -> None:
        self.store = store
        self.asked: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if not callable(found):
            return found

        def call(*args: Any) -> Any:
            self.asked.append((name, args))
            return found(*args)

        return call


def test_a_page_asks_the_store_for_one_name_more_than_it_shows(meta, run) -> None:
    run(meta.put_manifest("app", manifest(M1), [], [f"t{i:03d}" for i in range(300)]))
    for i in range(300):
        run(meta.link_blob(f"r/{i:03d}", B1, 5))
    recording = Recording(meta)
    listing = ListingService(recording)  # type: ignore[arg-type]
    # n: (names shown, names asked of the store); no n is a page of MAX_PAGE with a Link on.
    for n, (shown, asked) in {None: (300, 10_001), 0: (0, 0), 1: (1, 2), 100: (100, 101)}.items():
        recording.asked.clear()
        assert len(run(listing.tags("app", n, "t")).items) == shown
        assert recording.asked == [("tags_page", ("app", asked, "t"))], n
        recording.asked.clear()
        assert len(run(listing.catalog(n, "r")).items) == shown
        assert recording.asked == ([("list_repositories", (asked, "r"))] if n != 0 else []), n
    page = run(listing.tags("app", 20_000, None))
    assert len(page.items) == 300 and recording.asked[-1] == ("tags_page", ("app", 10_001, None))
