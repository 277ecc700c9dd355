"""The metadata store contract, run against every backend."""

from __future__ import annotations

from dockyard.metadata.base import ManifestRecord, Reference

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def record(digest: str, **extra: object) -> ManifestRecord:
    return ManifestRecord(
        digest=digest, media_type="application/vnd.oci.image.manifest.v1+json", size=100, **extra
    )  # type: ignore[arg-type]


def test_blob_links(meta, run) -> None:
    assert run(meta.blob_size(D1)) is None
    run(meta.link_blob("a/b", D1, 42))
    run(meta.link_blob("a/b", D1, 42))  # idempotent
    assert run(meta.blob_size(D1)) == 42
    assert run(meta.linked_blob_size("a/b", D1)) == 42
    assert run(meta.linked_blob_size("other", D1)) is None
    assert run(meta.unlink_blob("a/b", D1)) is True
    assert run(meta.unlink_blob("a/b", D1)) is False
    assert run(meta.blob_size(D1)) == 42, "unlinking leaves the blob for garbage collection"


def test_uploads(meta, run) -> None:
    run(meta.create_upload("u" * 32, "repo", 10.0))
    upload = run(meta.get_upload("u" * 32))
    assert (upload.repository, upload.size) == ("repo", 0)
    assert run(meta.advance_upload("u" * 32, 0, 100, 11.0)) is True
    assert run(meta.advance_upload("u" * 32, 0, 200, 12.0)) is False, "stale offset loses"
    assert run(meta.get_upload("u" * 32)).size == 100
    assert [u.id for u in run(meta.expired_uploads(11.5))] == ["u" * 32]
    assert run(meta.expired_uploads(10.5)) == []
    run(meta.delete_upload("u" * 32))
    assert run(meta.get_upload("u" * 32)) is None


def test_manifests_tags_and_references(meta, run) -> None:
    run(meta.link_blob("r", D3, 5))
    run(
        meta.put_manifest(
            "r", record(D1, annotations={"k": "v"}), [Reference(D3, "blob")], ["latest", "v1"]
        )
    )
    assert run(meta.resolve_tag("r", "latest")).digest == D1
    assert run(meta.get_manifest("r", D1)).annotations == {"k": "v"}
    assert run(meta.get_manifest("other", D1)) is None
    assert run(meta.missing_manifests("r", [D1, D2])) == [D2]
    run(meta.put_manifest("r", record(D2, subject=D1, artifact_type="x/sig"), [], ["latest"]))
    assert run(meta.resolve_tag("r", "latest")).digest == D2
    assert [m.digest for m in run(meta.referrers("r", D1))] == [D2]
    assert run(meta.referrers("r", D1))[0].artifact_type == "x/sig"
    assert run(meta.list_tags("r", None, None)) == ["latest", "v1"]
    assert run(meta.delete_tag("r", "v1")) is True
    assert run(meta.delete_tag("r", "v1")) is False
    assert run(meta.delete_manifest("r", D2)) is True
    assert run(meta.resolve_tag("r", "latest")) is None, "deleting a manifest drops its tags"
    assert run(meta.delete_manifest("r", D2)) is False


def test_listing_order_and_paging(meta, run) -> None:
    names = ["b", "a", "B", "a-b", "a/b", "a.b", "ab"]
    for name in names:
        run(meta.link_blob(name, D1, 1))
    assert run(meta.list_repositories(None, None)) == tuple(sorted(names))
    assert run(meta.list_repositories(2, "a")) == tuple(
        sorted(names)[sorted(names).index("a") + 1 :][:2]
    )
    tags = ["1.10", "1.2", "Z", "_", "a", "latest"]
    run(meta.put_manifest("t", record(D1), [], tags))
    assert run(meta.list_tags("t", None, None)) == sorted(tags)
    assert run(meta.list_tags("t", 2, "1.2")) == sorted(tags)[2:4]
    assert run(meta.repository_exists("t")) is True
    assert run(meta.repository_exists("nope")) is False


def test_completing_an_upload_links_the_blob_and_forgets_the_upload(meta, run) -> None:
    run(meta.create_upload("c" * 32, "done/repo", 10.0))
    run(meta.complete_upload("c" * 32, "done/repo", D3, 7))
    assert run(meta.get_upload("c" * 32)) is None
    assert run(meta.linked_blob_size("done/repo", D3)) == 7


def test_sqlite_upload_bookkeeping_leaves_every_connection_synced(tmp_path, run) -> None:
    """Upload records are written without waiting for the disk; the connection that wrote
    them must go back to the pool with `synchronous=FULL`, or later writes (tags, blob links)
    would silently stop being durable."""
    from dockyard.metadata.sql import SQLMetadataStore

    store = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    try:
        for n in range(3):
            run(store.create_upload(str(n) * 32, "repo", 1.0))
            run(store.advance_upload(str(n) * 32, 0, 5, 2.0))
            run(store.delete_upload(str(n) * 32))
        assert store.runner.engine is not None
        connections = [store.runner.engine.connect() for _ in range(8)]  # the whole pool
        try:
            levels = {c.exec_driver_sql("PRAGMA synchronous").scalar() for c in connections}
        finally:
            for c in connections:
                c.close()
        assert levels == {2}, levels  # 2 = FULL
    finally:
        run(store.close())


def test_sqlite_reads_on_the_event_loop_move_to_a_thread_when_the_file_is_locked(
    tmp_path, monkeypatch
) -> None:
    """Key lookups run on the event loop with a short busy timeout; when SQLite reports the
    database locked, the same read is done by the thread pool (which may wait) instead."""
    import asyncio
    import threading

    import sqlalchemy as sa

    from dockyard.metadata.sql import SQLMetadataStore

    store = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    asyncio.run(store.link_blob("repo", D1, 3))
    original = store.runner._read_here
    threads: list[str] = []

    def locked_on_the_loop(fn, patience_ms=None):  # type: ignore[no-untyped-def]
        threads.append(threading.current_thread().name)
        if patience_ms is not None:
            raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))
        return original(fn, patience_ms)

    monkeypatch.setattr(store.runner, "_read_here", locked_on_the_loop)

    async def main() -> int | None:
        try:
            return await store.linked_blob_size("repo", D1)
        finally:
            await store.close()

    assert asyncio.run(main()) == 3
    assert len(threads) == 2 and threads[1].startswith("metadata"), threads
