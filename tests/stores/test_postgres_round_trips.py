"""PostgreSQL reads cost as few round trips as they can, counted on the wire (`WireCounter`):
a read is its statements and nothing else (no pre-ping, no BEGIN, COMMIT or reset), a listing
page of any length arrives as one row, a statement stays prepared however many others ran,
and a connection the server dropped is replaced without the caller seeing it. Each replica
still sees every write another acknowledged."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dockyard.metadata.base import ManifestRecord, Reference
from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.registry import migrate
from tests.support.pgwire import WireCounter
from tests.support.postgres import PostgresCluster

M1 = "sha256:" + "a" * 64
B1 = "sha256:" + "c" * 64
MANY_TAGS = 10_000


def manifest(digest: str = M1) -> ManifestRecord:
    return ManifestRecord(digest, "application/vnd.oci.image.manifest.v1+json", 10)


@pytest.fixture
def wire(postgres: PostgresCluster) -> Iterator[WireCounter]:
    counter = WireCounter(postgres.port).start()
    yield counter
    counter.stop()


@pytest.fixture
def database(postgres: PostgresCluster, run) -> str:
    """A migrated database of this test's own (migrated apart: the counts start clean)."""
    url = postgres.create_database()
    store = SQLMetadataStore.open_postgres(url)
    run(migrate(store))
    run(store.close())
    return url


@pytest.fixture
def counted(wire: WireCounter, database: str, run) -> Iterator[SQLMetadataStore]:
    """A store that reaches the database through the counter."""
    store = SQLMetadataStore.open_postgres(wire.url(database))
    yield store
    run(store.close())


def warm(run, read, times: int = 3) -> None:  # type: ignore[no-untyped-def]
    """Run a read on every pooled connection once: its statements are then prepared there."""
    for _ in range(times):
        run(read())


def test_a_lookup_by_key_is_one_round_trip(counted, wire, run) -> None:
    run(counted.put_manifest("rt/app", manifest(), [], ["v1"]))
    warm(run, lambda: counted.resolve_tag("rt/app", "v1"))
    wire.reset()

    found = run(counted.resolve_tag("rt/app", "v1"))

    assert found is not None and found.digest == M1
    assert wire.round_trips == 1, wire.statements
    # Nothing around the statement: no BEGIN/COMMIT, no ping (";"), no ROLLBACK on return.
    assert wire.statements == [], wire.statements


def test_a_listing_page_of_any_length_is_one_row_in_one_round_trip(
    counted, wire, database, run
) -> None:
    names = [f"t-{i:05d}" for i in range(MANY_TAGS)]
    # Names whose byte order is not a locale's: upper case before lower, "_" between them.
    names += ["Zeta", "_under", "a.b", "a-b", "A_B", "9z"]
    shuffled = random.sample(names, len(names))
    filler = SQLMetadataStore.open_postgres(database)  # straight to the server: many rows
    try:
        for start in range(0, len(shuffled), 2_000):
            batch = shuffled[start : start + 2_000]
            run(filler.put_manifest("rt/many", manifest(), [], batch))
        for i in range(30):
            run(filler.link_blob(f"rt/repo-{i:03d}", B1, 5))
    finally:
        run(filler.close())
    everything = len(names) + 1
    warm(run, lambda: counted.tags_page("rt/many", everything, None))
    warm(run, lambda: counted.list_repositories(None, None))
    warm(run, lambda: counted.list_repositories(10, "rt/repo-005"))
    wire.reset()

    tags = run(counted.tags_page("rt/many", everything, None))

    assert list(tags) == sorted(names)  # code point order: the bytes' order in ASCII
    assert (wire.round_trips, wire.rows) == (1, 1)

    wire.reset()
    repositories = run(counted.list_repositories(None, None))
    assert list(repositories) == sorted(["rt/many", *(f"rt/repo-{i:03d}" for i in range(30))])
    assert (wire.round_trips, wire.rows) == (1, 1)

    wire.reset()
    page = run(counted.list_repositories(10, "rt/repo-005"))
    assert list(page) == [f"rt/repo-{i:03d}" for i in range(6, 16)]
    assert (wire.round_trips, wire.rows) == (1, 1)

    # An empty page is no name (not one empty one), and a repository without tags is known.
    run(counted.link_blob("rt/untagged", B1, 5))
    assert run(counted.tags_page("rt/untagged", 100, None)) == ()
    assert run(counted.tags_page("rt/many", 100, "zzz")) == ()
    assert run(counted.tags_page("rt/nothing-here", 100, None)) is None


def test_a_statement_stays_prepared_however_many_others_ran(counted, wire, run) -> None:
    """More distinct statements than SQLAlchemy's default cache (100) keeps per connection:
    the first is still prepared (one round trip, no Parse) when it runs again."""

    def select(number: int):  # type: ignore[no-untyped-def]
        return lambda conn: conn.execute(sa.text(f"SELECT {number} AS n")).scalar_one()

    # One at a time: the pool never needs a second connection, so all run on one.
    for number in range(300):
        assert run(counted.runner.read(select(number))) == number
    wire.reset()

    assert run(counted.runner.read(select(0))) == 0

    assert wire.round_trips == 1
    assert wire.sent[ord("P")] == 0, wire.statements


def test_a_dropped_connection_is_replaced_for_a_read_and_a_write(counted, wire, run) -> None:
    run(counted.put_manifest("rt/drop", manifest(), [], ["v1"]))

    async def at_once() -> list[ManifestRecord | None]:  # several pooled connections
        return await asyncio.gather(*(counted.resolve_tag("rt/drop", "v1") for _ in range(6)))

    assert None not in run(at_once())
    assert counted.runner.engine.pool.checkedin() > 1

    wire.drop_connections()  # as a restarted server would: the pooled connections are dead
    found = run(counted.resolve_tag("rt/drop", "v1"))
    assert found is not None and found.digest == M1

    wire.drop_connections()
    run(counted.put_manifest("rt/drop", manifest(), [], ["v2"]))
    assert run(counted.tags_page("rt/drop", 10, None)) == ("v1", "v2")

    # Once only: a database that stays away is an error, not a loop.
    wire.stop()
    with pytest.raises(Exception):  # noqa: B017 - refused connections, whatever the driver says
        run(counted.resolve_tag("rt/drop", "v1"))


def test_the_content_lock_takes_a_new_connection_after_a_drop(counted, wire, run) -> None:
    lock = counted.shared_content_lock()
    assert lock is not None

    async def publish_then_sweep() -> bool:
        async with lock.publishing():
            pass
        async with lock.sweeping():
            pass
        return await lock.contended()

    assert run(publish_then_sweep()) is False
    wire.drop_connections()
    assert run(publish_then_sweep()) is False
    wire.drop_connections()
    assert run(lock.contended()) is False


def test_a_replica_reads_what_another_acknowledged(database, run) -> None:
    """Two replicas on one database: each write one acknowledges, the other's next read sees
    (reads run in autocommit, each statement on what was committed when it started)."""
    writer = SQLMetadataStore.open_postgres(database)
    reader = SQLMetadataStore.open_postgres(database)
    try:
        refs = [Reference(B1, "blob")]
        for i in range(40):
            tag = f"v{i:02d}"
            run(writer.put_manifest("rt/replicas", manifest(), refs, [tag], links=[(B1, 5)]))
            seen = run(reader.resolve_tag("rt/replicas", tag))
            assert seen is not None and seen.digest == M1
            page = run(reader.tags_page("rt/replicas", 100, None))
            assert page is not None and page[-1] == tag and len(page) == i + 1
            if i % 10 == 9:
                run(writer.delete_tag("rt/replicas", tag))
                assert run(reader.resolve_tag("rt/replicas", tag)) is None
                run(writer.put_manifest("rt/replicas", manifest(), refs, [tag], links=[(B1, 5)]))
    finally:
        run(writer.close())
        run(reader.close())


def test_a_long_page_is_read_again_only_once_something_committed(
    counted, wire, database, run
) -> None:
    """A page longer than a lookup (a whole tag list, the catalog by 1,000) is remembered with
    the database's snapshot: while no transaction has begun or ended since, asking for it
    again is one statement of one row, the snapshot, and the page is not read. A commit from
    another replica changes the snapshot, and the next ask reads the page again. Short pages
    are read every time: checking would cost what reading does. (Counted on the wire: the
    snapshot and the page are one row each.)"""
    names = [f"t-{i:05d}" for i in range(3_000)]
    other = SQLMetadataStore.open_postgres(database)  # another replica, straight to the server
    try:
        run(other.put_manifest("rt/long", manifest(), [], names))
        everything = len(names) + 1
        warm(run, lambda: counted.tags_page("rt/long", everything, None))
        # Once more after a commit, untimed: the page's statement is then prepared too.
        run(other.put_manifest("rt/long", manifest(), [], ["zz-0"]))
        names.append("zz-0")
        everything += 1
        warm(run, lambda: counted.tags_page("rt/long", everything, None), times=1)
        wire.reset()

        again = run(counted.tags_page("rt/long", everything, None))

        assert list(again) == names
        assert (wire.round_trips, wire.rows) == (1, 1)  # the snapshot, not the page

        run(other.put_manifest("rt/long", manifest(), [], ["zz-new"]))
        wire.reset()
        after = run(counted.tags_page("rt/long", everything, None))
        assert list(after) == [*names, "zz-new"]
        assert (wire.round_trips, wire.rows) == (2, 2)  # the snapshot, then the page

        for _ in range(3):
            wire.reset()
            assert len(run(counted.tags_page("rt/long", 101, None))) == 101
            assert (wire.round_trips, wire.rows) == (1, 1)  # the page, no snapshot
    finally:
        run(other.close())


def test_a_listing_page_goes_to_the_driver_past_sqlalchemy(counted, wire, run) -> None:
    """Once the repository's id is known, a tag page is one statement sent to asyncpg as it
    is (`OneValue`), as is every catalog page: SQLAlchemy executes nothing (its execution
    context, result object and greenlet hop were about half of a page's CPU time), and the
    page is still one round trip of one row."""
    run(counted.put_manifest("rt/direct", manifest(), [], [f"t-{i:03d}" for i in range(300)]))
    executed: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        executed.append(statement)

    engine = counted.runner.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        readings = (
            lambda: counted.tags_page("rt/direct", 101, "t-099"),
            lambda: counted.list_repositories(100, None),
            lambda: counted.list_repositories(None, None),  # long: the snapshot, then the page
        )
        for reading in readings:
            warm(run, reading)
        executed.clear()
        for reading in readings:
            wire.reset()
            names = run(reading())
            assert names and (wire.round_trips, wire.rows) <= (2, 2), wire.statements
        assert run(counted.tags_page("rt/direct", 101, "t-099"))[:2] == ("t-100", "t-101")
        assert run(counted.list_repositories(100, None)) == ("rt/direct",)
        assert executed == []
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)


def test_a_page_read_past_sqlalchemy_survives_a_dropped_connection(counted, wire, run) -> None:
    """A connection the server dropped is found by the page's statement: it is discarded and
    the page read again, the caller none the wiser; a database that stays away is an error."""
    run(counted.put_manifest("rt/dropped", manifest(), [], ["a", "b", "c"]))

    async def at_once() -> list[tuple[str, ...] | None]:  # several pooled connections
        return await asyncio.gather(*(counted.tags_page("rt/dropped", 10, None) for _ in range(6)))

    assert run(at_once()) == [("a", "b", "c")] * 6
    assert counted.runner.engine.pool.checkedin() > 1

    wire.drop_connections()
    assert run(counted.tags_page("rt/dropped", 10, "a")) == ("b", "c")
    wire.drop_connections()
    assert run(counted.list_repositories(10, None)) == ("rt/dropped",)

    wire.stop()
    with pytest.raises(Exception):  # noqa: B017 - refused connections, whatever the driver says
        run(counted.tags_page("rt/dropped", 10, None))
