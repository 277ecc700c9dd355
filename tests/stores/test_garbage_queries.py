"""What garbage collection will ask the metadata store, on every backend: which blobs nothing
references, and which manifests are untagged. Each is one query whose inner lookups use an
index, so it costs one pass over its table however large the registry grows."""

from __future__ import annotations

from pathlib import Path

from dockyard.metadata.base import ManifestRecord, Reference
from dockyard.metadata.blob_links import UNREFERENCED
from dockyard.metadata.manifests import UNTAGGED
from dockyard.metadata.sql import SQLMetadataStore


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


LAYER, CONFIG, LOOSE, DROPPED, NAMED_ONLY = (digest(n) for n in range(1, 6))
IMAGE, OTHER, INDEX, CHILD, LONE_INDEX, LONE_CHILD = (digest(n) for n in range(10, 16))

IMAGE_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def image(manifest: str) -> ManifestRecord:
    return ManifestRecord(digest=manifest, media_type=IMAGE_TYPE, size=100)


def index(manifest: str) -> ManifestRecord:
    return ManifestRecord(digest=manifest, media_type=INDEX_TYPE, size=100)


def test_unreferenced_blobs_are_those_no_link_and_no_manifest_needs(meta, run) -> None:
    assert run(meta.unreferenced_blobs()) == []
    run(meta.link_blob("gc/app", LAYER, 10))
    run(meta.link_blob("gc/app", CONFIG, 5))
    run(meta.link_blob("gc/app", LOOSE, 7))
    run(meta.link_blob("gc/app", DROPPED, 3))
    # Named by a manifest without being linked (a mount that never came): still needed.
    run(
        meta.put_manifest(
            "gc/app",
            image(IMAGE),
            [Reference(LAYER, "blob"), Reference(CONFIG, "blob"), Reference(NAMED_ONLY, "blob")],
            ["v1"],
        )
    )
    assert run(meta.unreferenced_blobs()) == []

    assert run(meta.unlink_blob("gc/app", DROPPED))
    assert run(meta.unreferenced_blobs()) == [DROPPED]
    assert run(meta.unlink_blob("gc/app", LAYER))
    assert run(meta.unreferenced_blobs()) == [DROPPED], "the manifest still names the layer"

    # The manifest gone, its own bytes and the layer only it named are nobody's; the loose
    # blob is still linked.
    assert run(meta.delete_manifest("gc/app", IMAGE))
    assert run(meta.unreferenced_blobs()) == sorted([DROPPED, LAYER, IMAGE])

    # Another repository linking the same bytes keeps them.
    run(meta.link_blob("gc/other", LAYER, 10))
    assert run(meta.unreferenced_blobs()) == sorted([DROPPED, IMAGE])


def test_untagged_manifests_leave_out_tagged_ones_and_children_of_indexes(meta, run) -> None:
    assert run(meta.untagged_manifests()) == []
    run(meta.put_manifest("gc/app", image(IMAGE), [], ["v1"]))
    run(meta.put_manifest("gc/app", image(OTHER), [], []))
    run(meta.put_manifest("gc/app", image(CHILD), [], []))
    run(meta.put_manifest("gc/app", index(INDEX), [Reference(CHILD, "manifest")], ["multi"]))
    run(meta.put_manifest("gc/app", image(LONE_CHILD), [], []))
    run(meta.put_manifest("gc/app", index(LONE_INDEX), [Reference(LONE_CHILD, "manifest")], []))
    # The same image untagged in another repository: tags count in their own repository.
    run(meta.put_manifest("gc/other", image(IMAGE), [], []))

    assert run(meta.untagged_manifests()) == sorted(
        [("gc/app", LONE_INDEX), ("gc/app", OTHER), ("gc/other", IMAGE)]
    )

    assert run(meta.delete_tag("gc/app", "v1"))
    assert run(meta.delete_tag("gc/app", "multi"))
    assert run(meta.untagged_manifests()) == sorted(
        [
            ("gc/app", IMAGE),
            ("gc/app", INDEX),
            ("gc/app", LONE_INDEX),
            ("gc/app", OTHER),
            ("gc/other", IMAGE),
        ]
    ), "children stay out while their index is there"

    assert run(meta.delete_manifest("gc/app", INDEX))
    assert ("gc/app", CHILD) in run(meta.untagged_manifests())


def query_plan(store: SQLMetadataStore, query: object, run) -> list[str]:
    def explain(conn):  # type: ignore[no-untyped-def]
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})  # type: ignore[attr-defined]
        return [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]

    return run(store.runner.read(explain))


def test_both_queries_scan_one_table_and_look_up_the_rest_by_index(tmp_path: Path, run) -> None:
    store = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    try:
        # Untagged manifests may be walked repository by repository (each one's manifests
        # found by primary key), which is the same single pass.
        for query, tables in ((UNREFERENCED, {"blobs"}), (UNTAGGED, {"manifests", "repositories"})):
            plan = query_plan(store, query, run)
            scans = [step for step in plan if step.startswith("SCAN")]
            assert len(scans) == 1 and scans[0].split()[1] in tables, plan
            lookups = [step for step in plan if step.startswith("SEARCH")]
            assert lookups and all("INDEX" in step or "PRIMARY KEY" in step for step in lookups), (
                plan
            )
    finally:
        run(store.close())
