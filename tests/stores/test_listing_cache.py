"""Tag lists and the catalog cached by each server process stay exact: every change moves
their version, on every metadata backend."""

from __future__ import annotations

from dockyard.metadata.base import ManifestRecord
from dockyard.service.listing import ListingService

M1 = "sha256:" + "a" * 64
M2 = "sha256:" + "b" * 64


def manifest(digest: str) -> ManifestRecord:
    return ManifestRecord(
        digest=digest, media_type="application/vnd.oci.image.manifest.v1+json", size=10
    )


def test_cached_tag_lists_follow_every_change(meta, run) -> None:
    one, other = ListingService(meta), ListingService(meta)  # two server processes

    def tags(listing: ListingService) -> list[str]:
        return run(listing.tags("app", None, None)).items

    run(meta.put_manifest("app", manifest(M1), [], ["v1", "latest"]))
    assert tags(one) == tags(other) == ["latest", "v1"]
    version = run(meta.tags_version("app"))

    run(meta.put_manifest("app", manifest(M2), [], ["v2"]))  # a new tag
    assert tags(one) == tags(other) == ["latest", "v1", "v2"]

    run(meta.put_manifest("app", manifest(M2), [], ["latest"]))  # a tag moved
    assert run(meta.tags_version("app")) != version
    assert tags(one) == tags(other) == ["latest", "v1", "v2"]  # both caches refreshed

    assert run(meta.delete_tag("app", "v1"))
    assert tags(one) == tags(other) == ["latest", "v2"]

    run(meta.put_manifest("app", manifest(M1), [], []))  # untagged: nothing to list changes
    assert run(meta.delete_manifest("app", M2))  # takes "latest" and "v2" with it
    assert tags(one) == tags(other) == []

    page = run(one.tags("app", 1, None))
    assert page.items == [] and page.next_last is None


def test_pages_of_a_cached_list(meta, run) -> None:
    listing = ListingService(meta)
    run(meta.put_manifest("paged", manifest(M1), [], [f"t{i:02d}" for i in range(25)]))
    first = run(listing.tags("paged", 10, None))
    assert first.items == [f"t{i:02d}" for i in range(10)] and first.next_last == "t09"
    assert first.whole is None
    last = run(listing.tags("paged", 10, "t19"))
    assert last.items == [f"t{i:02d}" for i in range(20, 25)] and last.next_last is None
    whole = run(listing.tags("paged", None, None))
    assert len(whole.items) == 25 and whole.whole is not None
    assert run(listing.tags("paged", 10, "zzz")).items == []


B1 = "sha256:" + "c" * 64


def test_the_cached_catalog_follows_every_change(meta, run) -> None:
    one, other = ListingService(meta), ListingService(meta)

    def catalog(listing: ListingService) -> list[str]:
        return run(listing.catalog(None, None)).items

    assert catalog(one) == catalog(other) == []
    run(meta.create_upload("u" * 32, "empty", 1.0))  # a repository with nothing in it yet
    run(meta.link_blob("blobs/only", B1, 5))
    assert catalog(one) == catalog(other) == ["blobs/only"]
    run(meta.put_manifest("images/app", manifest(M1), [], ["v1"]))
    assert catalog(one) == catalog(other) == ["blobs/only", "images/app"]
    run(meta.complete_upload("u" * 32, "empty", B1, 5))
    assert catalog(one) == catalog(other) == ["blobs/only", "empty", "images/app"]
    assert run(meta.unlink_blob("blobs/only", B1))
    assert catalog(one) == catalog(other) == ["empty", "images/app"]
    assert run(meta.delete_manifest("images/app", M1))
    assert catalog(one) == catalog(other) == ["empty"]
    page = run(one.catalog(1, None))
    assert page.items == ["empty"] and page.next_last is None
