"""Namespace quotas in the metadata store on every database: the counters the triggers keep
always equal a scan of the links, and the check made in the linking transaction is exact."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.metadata.base import ManifestRecord, QuotaExceeded

REPOSITORIES = ["acme/app", "acme/web", "acme/web/sub", "solo", "beta/app"]
DIGESTS = ["sha256:" + f"{i:x}" * 64 for i in range(1, 7)]
SIZE = {digest: 100 * (i + 1) for i, digest in enumerate(DIGESTS)}


def record(digest: str) -> ManifestRecord:
    return ManifestRecord(digest, "application/vnd.oci.image.manifest.v1+json", SIZE[digest])


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["link", "unlink", "manifest", "unmanifest", "forget", "empty"]),
        st.sampled_from(REPOSITORIES),
        st.sampled_from(DIGESTS),
    ),
    max_size=12,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(operations=OPERATIONS)
def test_counters_always_equal_the_scan(meta, run, operations) -> None:
    for operation, repository, digest in operations:
        if operation == "link":
            run(meta.link_blob(repository, digest, SIZE[digest]))
        elif operation == "unlink":
            run(meta.unlink_blob(repository, digest))
        elif operation == "manifest":
            run(meta.put_manifest(repository, record(digest), [], ["t"]))
        elif operation == "unmanifest":
            run(meta.delete_manifest(repository, digest))
        elif operation == "forget":
            run(meta.forget_blob_records([digest]))
        else:  # a namespace emptied in bulk, as removing its account does
            owner = repository.split("/")[0]
            if run(meta.accounts.get_account(owner)) is None:
                run(meta.accounts.create_account(owner, "user", None, False, 0.0))
            assert run(meta.accounts.delete_account(owner, "delete", None, 0.0))
        assert run(meta.quota_usage()) == run(meta.quota_usage(scan=True)), operation


def test_a_blob_in_two_repositories_counts_once(meta, run) -> None:
    d1, d2 = DIGESTS[0], DIGESTS[1]
    run(meta.link_blob("acme/app", d1, SIZE[d1]))
    run(meta.link_blob("acme/web", d1, SIZE[d1]))
    run(meta.link_blob("other/app", d1, SIZE[d1]))
    run(meta.put_manifest("acme/app", record(d2), [], ["v1"]))
    assert run(meta.quota("acme")).used == SIZE[d1] + SIZE[d2]
    assert run(meta.quota("other")).used == SIZE[d1]
    run(meta.unlink_blob("acme/app", d1))
    assert run(meta.quota("acme")).used == SIZE[d1] + SIZE[d2], "acme/web still links it"
    run(meta.unlink_blob("acme/web", d1))
    run(meta.delete_manifest("acme/app", d2))
    assert run(meta.quota("acme")).used == 0


def test_past_the_quota_nothing_is_linked_or_stored(meta, run) -> None:
    d1, d2, d3 = DIGESTS[0], DIGESTS[1], DIGESTS[2]  # 100, 200, 300 bytes
    run(meta.set_quota("acme", 400))
    assert run(meta.quota("acme")).limit == 400
    run(meta.link_blob("acme/app", d3, SIZE[d3]))
    run(meta.link_blob("acme/web", d3, SIZE[d3]))  # held already: adds nothing
    with pytest.raises(QuotaExceeded) as refused:
        run(meta.link_blob("acme/app", d2, SIZE[d2]))
    assert (refused.value.namespace, refused.value.would_use, refused.value.limit) == (
        "acme",
        500,
        400,
    )
    assert run(meta.linked_blob_size("acme/app", d2)) is None
    with pytest.raises(QuotaExceeded):
        run(meta.put_manifest("acme/app", record(d2), [], ["v1"]))
    assert run(meta.resolve_tag("acme/app", "v1")) is None
    run(meta.put_manifest("acme/app", record(d1), [], ["v1"]))  # 300 + 100: exactly the quota
    with pytest.raises(QuotaExceeded):
        run(meta.put_manifest("acme/web", record(DIGESTS[3]), [], []))
    run(meta.link_blob("other/app", d2, SIZE[d2]))  # other namespaces are not held
    run(meta.set_quota("acme", None))
    run(meta.link_blob("acme/app", d2, SIZE[d2]))
    assert run(meta.quota("acme")).used == 600 and run(meta.quota("acme")).limit is None


def test_a_manifest_links_its_blobs_in_its_own_transaction(meta, run) -> None:
    d1, d2, d3 = DIGESTS[0], DIGESTS[1], DIGESTS[2]  # 100, 200, 300 bytes
    run(meta.link_blob("other/lib", d2, SIZE[d2]))
    run(meta.set_quota("acme", 400))
    # The link fits (200), the manifest after it does not (200 + 300): neither is kept.
    with pytest.raises(QuotaExceeded) as refused:
        run(meta.put_manifest("acme/app", record(d3), [], ["v1"], links=[(d2, SIZE[d2])]))
    assert refused.value.would_use == 500
    assert run(meta.linked_blob_size("acme/app", d2)) is None
    assert run(meta.quota("acme")).used == 0
    run(meta.put_manifest("acme/app", record(d1), [], ["v1"], links=[(d2, SIZE[d2])]))
    assert run(meta.linked_blob_size("acme/app", d2)) == SIZE[d2]
    assert run(meta.quota("acme")).used == 300
    assert run(meta.quota_usage()) == run(meta.quota_usage(scan=True))


def test_concurrent_links_cannot_together_pass_the_quota(meta, run) -> None:
    run(meta.set_quota("acme", 1000))
    digests = ["sha256:" + f"{i:02x}" * 32 for i in range(8)]

    async def race() -> list[BaseException | None]:
        return await asyncio.gather(
            *(meta.link_blob(f"acme/r{i}", d, 300) for i, d in enumerate(digests)),
            return_exceptions=True,
        )

    outcomes = run(race())
    assert sum(o is None for o in outcomes) == 3, outcomes
    assert all(isinstance(o, QuotaExceeded) for o in outcomes if o is not None), outcomes
    assert run(meta.quota("acme")).used == 900
    assert run(meta.quota_usage()) == run(meta.quota_usage(scan=True))


OLD_ROWS = {
    "repositories": [
        {"id": 1, "name": "acme/app", "created_at": 0.0},
        {"id": 2, "name": "acme/web", "created_at": 0.0},
        {"id": 3, "name": "solo", "created_at": 0.0},
    ],
    "blobs": [
        {"digest": DIGESTS[0], "size": 100, "created_at": 0.0},
        {"digest": DIGESTS[1], "size": 200, "created_at": 0.0},
    ],
    "repository_blobs": [
        {"repository_id": 1, "digest": DIGESTS[0], "created_at": 0.0},
        {"repository_id": 2, "digest": DIGESTS[0], "created_at": 0.0},
        {"repository_id": 3, "digest": DIGESTS[1], "created_at": 0.0},
    ],
    "manifests": [
        {
            "repository_id": 1,
            "digest": DIGESTS[2],
            "media_type": "x/y",
            "size": 50,
            "created_at": 0.0,
        }
    ],
}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_content_stored_before_the_upgrade_is_counted(request, tmp_path, run, backend) -> None:
    """A registry upgraded from revision 0007 starts with counters equal to the scan."""
    import sqlalchemy as sa

    from dockyard.metadata import schema as t
    from dockyard.metadata.migrate import upgrade, upgrade_async
    from dockyard.metadata.postgres_runner import postgres_engine
    from dockyard.metadata.sql import SQLMetadataStore, sqlite_engine

    def insert(conn: sa.Connection) -> None:
        for table, rows in OLD_ROWS.items():
            conn.execute(sa.insert(t.metadata.tables[table]), rows)

    if backend == "sqlite":
        engine = sqlite_engine(tmp_path / "metadata.db")
        upgrade(engine, "0007")
        with engine.begin() as conn:
            insert(conn)
        engine.dispose()
        store = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    else:
        url = request.getfixturevalue("postgres").create_database()

        async def old_database() -> None:
            engine = postgres_engine(url)
            await upgrade_async(engine, "0007")
            async with engine.begin() as conn:
                await conn.run_sync(insert)
            await engine.dispose()

        run(old_database())
        store = SQLMetadataStore.open_postgres(url)
        run(store.migrate())
    try:
        assert run(store.quota_usage()) == {"acme": 150, "solo": 200}
        assert run(store.quota_usage(scan=True)) == {"acme": 150, "solo": 200}
    finally:
        run(store.close())
