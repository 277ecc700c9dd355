"""Deleting a whole repository and measuring storage, on every metadata backend: one transaction
takes every record of the repository and nothing of its neighbours, and the usage figures count
each blob once per namespace, with what other namespaces also hold reported as shared."""

from __future__ import annotations

import time

from dockyard.metadata.base import (
    ManifestRecord,
    NamespaceUsage,
    Reference,
    RegistryTotal,
    RepositoryUsage,
)

IMAGE_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


BASE, APP, CONFIG, OWN = (digest(n) for n in range(1, 5))
IMAGE, INDEX, OTHER_IMAGE = (digest(n) for n in range(10, 13))


def push_image(meta, run, repository: str, manifest: str, layers: dict[str, int], tag: str) -> None:
    for layer, size in layers.items():
        run(meta.link_blob(repository, layer, size))
    run(
        meta.put_manifest(
            repository,
            ManifestRecord(digest=manifest, media_type=IMAGE_TYPE, size=100),
            [Reference(layer, "blob") for layer in layers],
            [tag],
            children_required=True,
        )
    )


def test_deleting_a_repository_takes_every_record_of_it_and_nothing_else(meta, run) -> None:
    push_image(meta, run, "acme/app", IMAGE, {BASE: 1000, APP: 200}, "v1")
    run(
        meta.put_manifest(
            "acme/app",
            ManifestRecord(digest=INDEX, media_type=INDEX_TYPE, size=50),
            [Reference(IMAGE, "manifest")],
            ["multi"],
            children_required=True,
        )
    )
    run(meta.create_upload("u" * 32, "acme/app", time.time()))
    run(meta.mark_tag_checked("acme/app", "v1", time.time()))
    run(meta.accounts.set_visibility("acme/app", "public"))
    push_image(meta, run, "acme/app-two", OTHER_IMAGE, {BASE: 1000}, "v1")
    # A name that extends the deleted one is another repository: it keeps everything.
    push_image(meta, run, "acme/app/sub", OTHER_IMAGE, {OWN: 30}, "v1")
    assert "acme/app" in run(meta.list_repositories(None, None))

    removed = run(meta.delete_repository("acme/app"))
    assert removed is not None
    assert (removed.tags, removed.manifests, removed.blob_links) == (2, 2, 2)
    assert removed.uploads == ["u" * 32]

    assert run(meta.tags_page("acme/app", 10, None)) is None, "tags/list answers NAME_UNKNOWN"
    assert run(meta.resolve_tag("acme/app", "v1")) is None
    assert run(meta.get_manifest("acme/app", IMAGE)) is None
    assert run(meta.linked_blob_size("acme/app", BASE)) is None
    assert run(meta.get_upload("u" * 32)) is None
    assert run(meta.tag_checked_at("acme/app", "v1")) is None
    assert run(meta.accounts.get_visibility("acme/app")) is None
    assert run(meta.list_repositories(None, None)) == ("acme/app-two", "acme/app/sub")
    # The neighbours keep the shared base layer and their own content.
    assert run(meta.linked_blob_size("acme/app-two", BASE)) == 1000
    assert run(meta.resolve_tag("acme/app/sub", "v1")) is not None
    # Only what the deleted repository alone held is now unreferenced: the collector's work.
    assert run(meta.unreferenced_blobs()) == sorted([APP, IMAGE, INDEX])

    assert run(meta.delete_repository("acme/app")) is None, "deleted twice: nothing there"
    assert run(meta.delete_repository("acme/never")) is None
    assert run(meta.delete_repository("acme/app\x00x")) is None


def test_a_deleted_repository_starts_again_empty_with_the_default_visibility(meta, run) -> None:
    push_image(meta, run, "acme/app", IMAGE, {BASE: 1000}, "v1")
    run(meta.accounts.set_visibility("acme/app", "private"))
    assert run(meta.delete_repository("acme/app")) is not None
    push_image(meta, run, "acme/app", OTHER_IMAGE, {OWN: 30}, "v2")
    assert run(meta.tags_page("acme/app", 10, None)) == ("v2",)
    assert run(meta.linked_blob_size("acme/app", BASE)) is None
    assert run(meta.accounts.get_visibility("acme/app")) is None


def test_usage_counts_each_blob_once_per_namespace_and_reports_what_is_shared(meta, run) -> None:
    assert run(meta.namespace_usage(None)) == []
    assert run(meta.registry_total()) == RegistryTotal(0, 0)
    # acme's two repositories share BASE; beta holds BASE too, and its own OWN.
    push_image(meta, run, "acme/app", IMAGE, {BASE: 1000, APP: 200}, "v1")
    push_image(meta, run, "acme/web", OTHER_IMAGE, {BASE: 1000, CONFIG: 7}, "v1")
    push_image(meta, run, "beta/tool", OTHER_IMAGE, {BASE: 1000, OWN: 30}, "v1")
    # '_' is a LIKE wildcard: a namespace "acm_" must not take in acme's repositories.
    push_image(meta, run, "acm_/x", IMAGE, {OWN: 30}, "v1")

    assert run(meta.repository_usage("acme")) == [
        RepositoryUsage("acme/app", 3, 1300),  # BASE, APP and the manifest
        RepositoryUsage("acme/web", 3, 1107),
    ]
    assert run(meta.repository_usage("acm_")) == [RepositoryUsage("acm_/x", 2, 130)]
    acme = NamespaceUsage("acme", 2, 5, 1000 + 200 + 7 + 100 + 100, 1000 + 100 + 100)
    assert run(meta.namespace_usage("acme")) == [acme]
    assert run(meta.namespace_usage(None)) == [
        NamespaceUsage("acm_", 1, 2, 130, 130),
        acme,
        NamespaceUsage("beta", 1, 3, 1130, 1130),
    ]
    assert run(meta.namespace_usage("nobody")) == []
    # Each blob once, registry-wide.
    assert run(meta.registry_total()) == RegistryTotal(6, 1000 + 200 + 7 + 30 + 100 + 100)

    # Deleting beta's repository: BASE and OTHER_IMAGE stop being shared with acme.
    assert run(meta.delete_repository("beta/tool")) is not None
    assert run(meta.namespace_usage("acme"))[0].shared_bytes == 100  # IMAGE, also acm_'s
    assert run(meta.namespace_usage("beta")) == []


def test_last_pushes_are_the_latest_manifest_or_tag_move(meta, run) -> None:
    before = time.time()
    push_image(meta, run, "acme/old", IMAGE, {BASE: 10}, "v1")
    push_image(meta, run, "acme/new", OTHER_IMAGE, {APP: 10}, "v1")
    run(meta.link_blob("acme/blobs-only", OWN, 10))
    pushes = run(meta.last_pushes())
    assert set(pushes) == {"acme/old", "acme/new"}
    assert before <= pushes["acme/old"] <= pushes["acme/new"] <= time.time()
    # Moving a tag to a manifest stored earlier is a push too.
    time.sleep(0.01)
    run(
        meta.put_manifest(
            "acme/old",
            ManifestRecord(digest=IMAGE, media_type=IMAGE_TYPE, size=100),
            [Reference(BASE, "blob")],
            ["v2"],
            children_required=True,
        )
    )
    later = run(meta.last_pushes())
    assert later["acme/old"] > pushes["acme/new"]
    assert later["acme/new"] == pushes["acme/new"]
