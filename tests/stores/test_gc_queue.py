"""The garbage collector's review queue and its decisions, on SQLite and PostgreSQL: what is
queued when a reference goes, what a review drops, and what it must keep."""

from __future__ import annotations

import time

from dockyard.metadata.base import ManifestRecord, Reference


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


LAYER, CONFIG, LOOSE, SHARED = (digest(n) for n in range(1, 5))
IMAGE, INDEX, CHILD, SIGNATURE, LONE = (digest(n) for n in range(10, 15))
IMAGE_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def image(manifest: str, subject: str | None = None) -> ManifestRecord:
    return ManifestRecord(digest=manifest, media_type=IMAGE_TYPE, size=100, subject=subject)


def later() -> float:
    return time.time() + 1


def test_a_link_is_queued_and_reviewed_only_after_the_grace_delay(meta, run) -> None:
    run(meta.link_blob("gc/app", LOOSE, 7))
    assert run(meta.due_for_review(time.time() - 3600, 10)) == [], "still in its grace delay"
    assert run(meta.due_for_review(later(), 10)) == [LOOSE]

    # Reviewed with a cutoff before the link was made: the row is not due, nothing goes.
    early = run(meta.collect_blobs([LOOSE], time.time() - 3600, []))
    assert early.blobs == [] and early.links == 0
    assert run(meta.linked_blob_size("gc/app", LOOSE)) == 7

    collected = run(meta.collect_blobs([LOOSE], later(), []))
    assert collected.blobs == [(LOOSE, 7)] and collected.links == 1
    assert run(meta.blob_size(LOOSE)) is None
    assert run(meta.linked_blob_size("gc/app", LOOSE)) is None
    # Killed before its bytes went: the row stays, and the next review, finding no record,
    # hands the digest back for its bytes.
    assert run(meta.due_for_review(later(), 10)) == [LOOSE]
    again = run(meta.collect_blobs([LOOSE], later(), []))
    assert again.blobs == [(LOOSE, None)] and again.links == 0
    run(meta.reviewed([LOOSE], later()))
    assert run(meta.review_queue_length()) == 0


def test_what_a_manifest_uses_stays_until_the_manifest_goes(meta, run) -> None:
    for blob, size in ((LAYER, 10), (CONFIG, 5)):
        run(meta.link_blob("gc/app", blob, size))
    refs = [Reference(LAYER, "blob"), Reference(CONFIG, "blob")]
    run(meta.put_manifest("gc/app", image(IMAGE), refs, ["v1"]))

    kept = run(meta.collect_blobs(run(meta.due_for_review(later(), 10)), later(), []))
    assert kept.blobs == [] and kept.links == 0
    assert run(meta.review_queue_length()) == 0, "reviewed and found in use: off the queue"
    assert run(meta.linked_blob_size("gc/app", LAYER)) == 10

    # Deleting the tag frees nothing (the manifest stays); deleting the manifest queues its
    # own digest and every blob it named.
    assert run(meta.delete_tag("gc/app", "v1"))
    assert run(meta.due_for_review(later(), 10)) == []
    assert run(meta.delete_manifest("gc/app", IMAGE))
    time.sleep(0.05)
    begun = time.time()
    due = run(meta.due_for_review(begun, 10))
    assert sorted(due) == sorted([LAYER, CONFIG, IMAGE])
    collected = run(meta.collect_blobs(due, begun, []))
    assert sorted(collected.blobs) == sorted([(LAYER, 10), (CONFIG, 5), (IMAGE, 100)])
    assert collected.links == 2
    # Queued again after the review began: the row stays for its new time.
    time.sleep(0.05)
    run(meta.enqueue_for_review([LAYER]))
    run(meta.reviewed([LAYER, CONFIG, IMAGE], begun))
    assert run(meta.due_for_review(later(), 10)) == [LAYER]


def test_a_digest_queued_again_keeps_the_rows_its_review_did_not_read(meta, run) -> None:
    # Each change adds a row (no push waits on another's), counted once as a digest.
    run(meta.link_blob("gc/app", LAYER, 10))
    run(meta.put_manifest("gc/app", image(IMAGE), [Reference(LAYER, "blob")], ["v1"]))
    run(meta.enqueue_for_review([LAYER]))
    assert run(meta.review_queue_length()) == 1, "LAYER, queued twice, is one digest"
    time.sleep(0.05)
    begun = time.time()
    time.sleep(0.05)
    run(meta.enqueue_for_review([LAYER]))  # a change after the review began
    kept = run(meta.collect_blobs([LAYER], begun, []))
    assert kept.blobs == [] and kept.links == 0, "the manifest uses it"
    assert run(meta.due_for_review(begun, 10)) == []
    assert run(meta.due_for_review(later(), 10)) == [LAYER], "the later change is still queued"


def test_the_catalog_drops_a_repository_only_when_it_loses_its_last_content(meta, run) -> None:
    run(meta.link_blob("gc/app", LAYER, 10))
    run(meta.put_manifest("gc/app", image(IMAGE), [Reference(LAYER, "blob")], ["v1"]))
    run(meta.put_manifest("gc/app", image(CHILD), [Reference(LAYER, "blob")], ["v2"]))
    assert run(meta.delete_manifest("gc/app", IMAGE))
    assert run(meta.list_repositories(None, None)) == ("gc/app",), "it holds CHILD and LAYER"
    assert run(meta.delete_manifest("gc/app", CHILD))
    assert run(meta.list_repositories(None, None)) == ("gc/app",), "it still links LAYER"
    collected = run(meta.collect_blobs([LAYER], later(), []))
    assert collected.links == 1
    assert run(meta.list_repositories(None, None)) == (), "its last link went"
    assert not run(meta.has_content("gc/app"))


def test_a_blob_another_repository_uses_loses_only_the_unused_link(meta, run) -> None:
    run(meta.link_blob("gc/a", SHARED, 9))
    run(meta.link_blob("gc/b", SHARED, 9))
    run(meta.put_manifest("gc/b", image(IMAGE), [Reference(SHARED, "blob")], ["v1"]))
    collected = run(meta.collect_blobs([SHARED], later(), []))
    assert collected.blobs == [] and collected.links == 1
    assert run(meta.linked_blob_size("gc/a", SHARED)) is None
    assert run(meta.linked_blob_size("gc/b", SHARED)) == 9


def test_a_link_made_again_starts_its_grace_delay_again(meta, run) -> None:
    run(meta.link_blob("gc/app", LOOSE, 7))
    cutoff = later()
    time.sleep(1.2)
    run(meta.link_blob("gc/app", LOOSE, 7))  # the same layer uploaded again by a new push
    collected = run(meta.collect_blobs([LOOSE], cutoff, []))
    assert collected.blobs == [] and collected.links == 0
    assert run(meta.linked_blob_size("gc/app", LOOSE)) == 7
    assert run(meta.due_for_review(cutoff, 10)) == []
    assert run(meta.due_for_review(later(), 10)) == [LOOSE], "still queued for its new time"


def test_cached_repositories_keep_their_links(meta, run) -> None:
    run(meta.link_blob("docker.io/library/alpine", LAYER, 10))
    collected = run(meta.collect_blobs([LAYER], later(), ["docker.io"]))
    assert collected.blobs == [] and collected.links == 0
    assert run(meta.linked_blob_size("docker.io/library/alpine", LAYER)) == 10
    # Not a cached repository any more (the upstream was removed): an ordinary dangling link.
    run(meta.enqueue_for_review([LAYER]))
    assert run(meta.collect_blobs([LAYER], later(), [])).blobs == [(LAYER, 10)]


def test_a_dry_run_reports_without_changing_anything(meta, run) -> None:
    run(meta.link_blob("gc/app", LOOSE, 7))
    run(meta.link_blob("gc/app", LAYER, 10))
    run(meta.put_manifest("gc/app", image(IMAGE), [Reference(LAYER, "blob")], ["v1"]))
    preview = run(meta.collect_blobs([LOOSE, LAYER], later(), [], dry_run=True))
    assert preview.blobs == [(LOOSE, 7)] and preview.links == 1
    assert run(meta.linked_blob_size("gc/app", LOOSE)) == 7
    assert run(meta.review_queue_length()) == 2


def test_untagged_manifests_go_unless_a_tag_an_index_or_a_held_subject_keeps_them(
    meta, run
) -> None:
    run(meta.put_manifest("gc/app", image(IMAGE), [], ["v1"]))
    run(meta.put_manifest("gc/app", image(CHILD), [], []))
    run(
        meta.put_manifest(
            "gc/app",
            ManifestRecord(digest=INDEX, media_type=INDEX_TYPE, size=100),
            [Reference(CHILD, "manifest")],
            ["multi"],
        )
    )
    run(meta.put_manifest("gc/app", image(SIGNATURE, subject=IMAGE), [], []))
    run(meta.put_manifest("gc/app", image(LONE), [], []))
    run(meta.put_manifest("gc/other", image(IMAGE), [], []))
    assert run(meta.untagged_due(time.time() - 3600, [], 10)) == [], "too recent"
    due = run(meta.untagged_due(later(), [], 10))
    assert due == sorted([("gc/app", LONE), ("gc/other", IMAGE)])
    assert run(meta.untagged_due(later(), ["gc"], 10)) == [], "a cached prefix keeps its own"

    # Tagged meanwhile: the review in the deleting transaction keeps it.
    run(meta.put_manifest("gc/other", image(IMAGE), [], ["late"]))
    gone = run(meta.collect_untagged(due, later(), []))
    assert gone == [("gc/app", LONE, 100)]
    assert run(meta.get_manifest("gc/app", LONE)) is None
    assert run(meta.get_manifest("gc/other", IMAGE)) is not None
    assert LONE in run(meta.due_for_review(later(), 10))

    # The subject gone, its signature is an untagged manifest like any other.
    assert run(meta.delete_manifest("gc/app", IMAGE))
    assert ("gc/app", SIGNATURE) in run(meta.untagged_due(later(), [], 10))
    preview = run(meta.collect_untagged([("gc/app", SIGNATURE)], later(), [], dry_run=True))
    assert preview == [("gc/app", SIGNATURE, 100)]
    assert run(meta.get_manifest("gc/app", SIGNATURE)) is not None, "a dry run deletes nothing"


def test_revision_0008_queues_every_blob_stored_before_it(tmp_path) -> None:
    import sqlalchemy as sa

    from dockyard.metadata.migrate import upgrade
    from dockyard.metadata.sql import sqlite_engine

    engine = sqlite_engine(tmp_path / "metadata.db")
    upgrade(engine, "0007")
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO blobs (digest, size, created_at) VALUES (:d, 3, 0)"),
            {"d": LOOSE},
        )
    upgrade(engine)
    with engine.connect() as conn:
        queued = conn.execute(sa.text("SELECT digest FROM gc_queue")).scalars().all()
    engine.dispose()
    assert queued == [LOOSE]


def test_the_queue_and_the_untagged_manifests_are_read_page_by_page(meta, run) -> None:
    digests = [digest(n) for n in range(20, 25)]
    for n, d in enumerate(digests):
        run(meta.link_blob("gc/app", d, n))
        run(meta.put_manifest("gc/pages", image(d), [], []))
    first = run(meta.due_for_review(later(), 2))
    assert first == digests[:2]
    assert run(meta.due_for_review(later(), 10, first[-1])) == digests[2:]
    pages, after = [], ("", "")
    while page := run(meta.untagged_due(later(), [], 2, after)):
        pages.append(page)
        after = page[-1]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [d for p in pages for _, d in p] == digests


def test_one_batch_decides_each_digest_on_its_own_references(meta, run) -> None:
    # Reviewed together, as the collector does a batch: a blob a manifest uses, one another
    # repository's manifest keeps, one a cached repository keeps, one a link made after the
    # cutoff keeps, and two nothing keeps (one of them with no record at all).
    fresh = digest(20)
    run(meta.link_blob("gc/used", LAYER, 10))
    run(meta.put_manifest("gc/used", image(IMAGE), [Reference(LAYER, "blob")], ["v1"]))
    run(meta.link_blob("gc/a", SHARED, 9))
    run(meta.link_blob("gc/b", SHARED, 9))
    run(meta.put_manifest("gc/b", image(CHILD), [Reference(SHARED, "blob")], ["v1"]))
    run(meta.link_blob("docker.io/library/alpine", CONFIG, 5))
    run(meta.link_blob("gc/loose", LOOSE, 7))
    run(meta.enqueue_for_review([LONE, fresh]))
    cutoff = later()
    time.sleep(1.2)
    run(meta.link_blob("gc/fresh", fresh, 3))  # in its grace delay at the cutoff

    batch = [LAYER, SHARED, CONFIG, LOOSE, fresh, LONE]
    collected = run(meta.collect_blobs(batch, cutoff, ["docker.io"]))
    assert sorted(collected.blobs) == sorted([(LOOSE, 7), (LONE, None)])
    assert collected.links == 2, "gc/a's SHARED and gc/loose's LOOSE"
    assert run(meta.linked_blob_size("gc/used", LAYER)) == 10
    assert run(meta.linked_blob_size("gc/a", SHARED)) is None
    assert run(meta.linked_blob_size("gc/b", SHARED)) == 9
    assert run(meta.linked_blob_size("docker.io/library/alpine", CONFIG)) == 5
    assert run(meta.linked_blob_size("gc/fresh", fresh)) == 3
    assert run(meta.blob_size(LOOSE)) is None
    assert run(meta.blob_size(SHARED)) == 9
    # Those kept leave the queue, those collected stay until their bytes are gone, and the
    # fresh link's own row waits for its time.
    assert run(meta.due_for_review(cutoff, 10)) == sorted([LOOSE, LONE])
    assert run(meta.due_for_review(later(), 10)) == sorted([LOOSE, LONE, fresh])


def test_rows_queued_since_the_last_review_tell_when_the_next_is_due(meta, run) -> None:
    before = time.time() - 1
    assert run(meta.queued_since(before, later())) is None
    run(meta.link_blob("gc/next", LOOSE, 7))
    middle = time.time()
    time.sleep(0.01)
    run(meta.link_blob("gc/next", LONE, 3))
    queued = run(meta.queued_since(before, later()))
    assert queued is not None
    first, last = queued
    assert before < first <= middle < last <= time.time(), "the earliest and the latest due"
    assert run(meta.queued_since(before, middle)) == (first, first), "only the first is due"
    assert run(meta.queued_since(before, before)) == (first, before), "none is due yet"
    assert run(meta.queued_since(first, later())) == (last, last), "rows after `since` only"
    assert run(meta.queued_since(time.time() + 1, later())) is None


def test_a_batch_takes_the_last_ones_off_the_queue_and_collects_the_next(meta, run) -> None:
    """`collect_next`: one transaction per batch. The digests of the batch before leave the
    queue in it (their bytes are gone); the next page is picked and decided as
    `collect_blobs` decides."""
    for n in (21, 22, 23):
        run(meta.link_blob("gc/next", digest(n), n))
    cutoff = later()
    due, collected = run(meta.collect_next(cutoff, 2, "", [], []))
    assert due == [digest(21), digest(22)]
    assert collected.blobs == [(digest(21), 21), (digest(22), 22)]
    assert run(meta.review_queue_length()) == 3, "rows stay until their bytes are gone"

    due, collected = run(meta.collect_next(cutoff, 2, due[-1], [], [digest(21), digest(22)]))
    assert due == [digest(23)] and collected.blobs == [(digest(23), 23)]
    assert run(meta.review_queue_length()) == 1, "the first batch's rows went with the second"

    due, collected = run(meta.collect_next(cutoff, 2, due[-1], [], [digest(23)]))
    assert due == [] and collected.blobs == []
    assert run(meta.review_queue_length()) == 0
