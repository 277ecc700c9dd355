"""Content management: deleting tags, manifests and blobs, as the conformance suite's
"Content Management" category does, then checking that deleted things are really gone.

The fixture pushes a config, a layer and a manifest tagged ``tagtest0``, plus two extra tags on
a second manifest so that the tag count after the deletion is not trivially zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest

from tests.conformance._client import (
    OK_2XX,
    assert_error,
    describe,
    error_codes,
    push_blob,
    push_manifest,
    tags_of,
)
from tests.conformance._content import (
    OCI_MANIFEST,
    Blob,
    Manifest,
    gzip_layer,
    image_config,
    image_manifest,
    random_blob,
    repo_name,
    sha256,
)

TAG = "tagtest0"
OTHER_TAGS = ("keep-1", "keep-2")
ACCEPT = {"Accept": OCI_MANIFEST}


@dataclass
class Managed:
    repo: str
    config: Blob
    layer: Blob
    manifest: Manifest
    other: Manifest
    setup: list[tuple[str, httpx.Response]] = field(default_factory=list)
    tags_before: list[str] = field(default_factory=list)
    steps: dict[str, httpx.Response] = field(default_factory=dict)


@pytest.fixture(scope="module")
def managed(mclient: httpx.Client) -> Managed:
    """Push the content, then run the suite's deletions in order, recording each answer."""
    repo = repo_name("management")
    config, layer = image_config(), gzip_layer()
    manifest = image_manifest(config, [layer], inline_config=True)
    other = image_manifest(config, [], annotations={"purpose": "keeps tags alive"})
    m = Managed(repo, config, layer, manifest, other)
    c = mclient
    m.setup.append(("config blob", push_blob(c, repo, config)))
    m.setup.append(("layer blob", push_blob(c, repo, layer)))
    m.setup.append(("manifest by tag", push_manifest(c, repo, TAG, manifest)))
    for tag in OTHER_TAGS:
        m.setup.append((f"tag {tag}", push_manifest(c, repo, tag, other)))
    listed = c.get(f"/v2/{repo}/tags/list")
    m.steps["tags_before"] = listed
    m.tags_before = tags_of(listed)

    s = m.steps
    s["delete_tag"] = c.delete(f"/v2/{repo}/manifests/{TAG}")
    s["get_deleted_tag"] = c.get(f"/v2/{repo}/manifests/{TAG}", headers=ACCEPT)
    s["get_digest_after_tag_delete"] = c.get(
        f"/v2/{repo}/manifests/{manifest.digest}", headers=ACCEPT
    )
    s["delete_manifest"] = c.delete(f"/v2/{repo}/manifests/{manifest.digest}")
    s["get_deleted_manifest"] = c.get(f"/v2/{repo}/manifests/{manifest.digest}", headers=ACCEPT)
    s["tags_after"] = c.get(f"/v2/{repo}/tags/list")
    s["delete_config"] = c.delete(f"/v2/{repo}/blobs/{config.digest}")
    s["delete_layer"] = c.delete(f"/v2/{repo}/blobs/{layer.digest}")
    s["get_deleted_config"] = c.get(f"/v2/{repo}/blobs/{config.digest}")
    s["get_deleted_layer"] = c.get(f"/v2/{repo}/blobs/{layer.digest}")
    return m


def test_setup_pushes_succeed(managed: Managed) -> None:
    for what, resp in managed.setup:
        assert resp.status_code in OK_2XX, f"{what}: {describe(resp)}"


def test_tags_listed_before_deletion(managed: Managed) -> None:
    resp = managed.steps["tags_before"]
    assert resp.status_code == 200, describe(resp)
    assert sorted(managed.tags_before) == sorted([TAG, *OTHER_TAGS])


# --- Manifest delete ----------------------------------------------------------------------


def test_delete_tag_is_202_or_refused(managed: Managed) -> None:
    resp = managed.steps["delete_tag"]
    assert resp.status_code in (400, 202, 405), describe(resp)
    if resp.status_code == 400:
        assert error_codes(resp)[0] == "UNSUPPORTED"


def test_delete_tag_is_202_strict(managed: Managed) -> None:
    assert managed.steps["delete_tag"].status_code == 202, describe(managed.steps["delete_tag"])


def test_deleted_tag_is_404_strict(managed: Managed) -> None:
    assert_error(managed.steps["get_deleted_tag"], 404, "MANIFEST_UNKNOWN")


def test_deleting_tag_keeps_manifest_strict(managed: Managed) -> None:
    resp = managed.steps["get_digest_after_tag_delete"]
    assert resp.status_code == 200, describe(resp)
    assert resp.content == managed.manifest.content


def test_delete_manifest_by_digest_is_202_unless_gone(managed: Managed) -> None:
    resp = managed.steps["delete_manifest"]
    assert resp.status_code in (202, 404), describe(resp)


def test_delete_manifest_by_digest_is_202_strict(managed: Managed) -> None:
    resp = managed.steps["delete_manifest"]
    assert resp.status_code == 202, describe(resp)


def test_get_deleted_manifest_is_404_unless_delete_disallowed(managed: Managed) -> None:
    resp = managed.steps["get_deleted_manifest"]
    assert resp.status_code in (404, 200), describe(resp)


def test_get_deleted_manifest_is_404_strict(managed: Managed) -> None:
    assert_error(managed.steps["get_deleted_manifest"], 404, "MANIFEST_UNKNOWN")


def test_tags_list_reflects_deletion(managed: Managed) -> None:
    resp = managed.steps["tags_after"]
    assert resp.status_code in (404, 200), describe(resp)
    expected = len(managed.tags_before) - 1
    if resp.status_code == 200:
        assert len(tags_of(resp)) == expected, describe(resp)
    else:
        assert expected == 0


def test_tags_list_after_deletion_strict(managed: Managed) -> None:
    resp = managed.steps["tags_after"]
    assert resp.status_code == 200, describe(resp)
    assert tags_of(resp) == sorted(OTHER_TAGS)


# --- Blob delete --------------------------------------------------------------------------


def test_delete_blobs_is_202_or_refused(managed: Managed) -> None:
    for step in ("delete_config", "delete_layer"):
        resp = managed.steps[step]
        assert resp.status_code in (202, 404, 405), f"{step}: {describe(resp)}"


def test_delete_blobs_is_202_strict(managed: Managed) -> None:
    for step in ("delete_config", "delete_layer"):
        resp = managed.steps[step]
        assert resp.status_code == 202, f"{step}: {describe(resp)}"


def test_get_deleted_blob_is_404(managed: Managed) -> None:
    if managed.steps["delete_layer"].status_code != 405:
        resp = managed.steps["get_deleted_config"]
        assert resp.status_code == 404, describe(resp)


def test_get_deleted_blobs_error_body_strict(managed: Managed) -> None:
    assert_error(managed.steps["get_deleted_config"], 404, "BLOB_UNKNOWN")
    assert_error(managed.steps["get_deleted_layer"], 404, "BLOB_UNKNOWN")


# --- Further deletion behaviour the spec requires -----------------------------------------


def test_delete_manifest_removes_every_tag_pointing_at_it_strict(client: httpx.Client) -> None:
    repo = repo_name("management-tags")
    config = image_config()
    assert push_blob(client, repo, config).status_code == 201
    manifest = image_manifest(config, [])
    survivor = image_manifest(config, [], annotations={"survivor": "yes"})
    for tag in ("one", "two", "three"):
        assert push_manifest(client, repo, tag, manifest).status_code == 201
    assert push_manifest(client, repo, "other", survivor).status_code == 201

    resp = client.delete(f"/v2/{repo}/manifests/{manifest.digest}")
    assert resp.status_code == 202, describe(resp)
    for tag in ("one", "two", "three"):
        got = client.get(f"/v2/{repo}/manifests/{tag}", headers=ACCEPT)
        assert_error(got, 404, "MANIFEST_UNKNOWN")
        head = client.head(f"/v2/{repo}/manifests/{tag}", headers=ACCEPT)
        assert head.status_code == 404, describe(head)
    listed = client.get(f"/v2/{repo}/tags/list")
    assert listed.status_code == 200, describe(listed)
    assert tags_of(listed) == ["other"]
    assert client.get(f"/v2/{repo}/manifests/other", headers=ACCEPT).status_code == 200


def test_retagging_moves_tag_strict(client: httpx.Client) -> None:
    repo = repo_name("management-retag")
    config = image_config()
    assert push_blob(client, repo, config).status_code == 201
    first = image_manifest(config, [], annotations={"n": "1"})
    second = image_manifest(config, [], annotations={"n": "2"})
    assert push_manifest(client, repo, "moving", first).status_code == 201
    assert push_manifest(client, repo, "moving", second).status_code == 201
    got = client.get(f"/v2/{repo}/manifests/moving", headers=ACCEPT)
    assert got.status_code == 200, describe(got)
    assert got.content == second.content
    # The first manifest is untagged but still there by digest.
    old = client.get(f"/v2/{repo}/manifests/{first.digest}", headers=ACCEPT)
    assert old.status_code == 200, describe(old)


def test_delete_unknown_manifest_is_404_strict(client: httpx.Client) -> None:
    repo = repo_name("management-missing")
    config = image_config()
    assert push_blob(client, repo, config).status_code == 201
    resp = client.delete(f"/v2/{repo}/manifests/{sha256(b'never pushed')}")
    assert_error(resp, 404, "MANIFEST_UNKNOWN")
    resp = client.delete(f"/v2/{repo}/manifests/never-tagged")
    assert_error(resp, 404, "MANIFEST_UNKNOWN")


def test_delete_unknown_blob_is_404_strict(client: httpx.Client) -> None:
    repo = repo_name("management-missing")
    blob = random_blob(16)
    assert push_blob(client, repo, blob).status_code == 201
    resp = client.delete(f"/v2/{repo}/blobs/{sha256(b'never pushed')}")
    assert_error(resp, 404, "BLOB_UNKNOWN")
    first = client.delete(f"/v2/{repo}/blobs/{blob.digest}")
    assert first.status_code == 202, describe(first)
    again = client.delete(f"/v2/{repo}/blobs/{blob.digest}")
    assert_error(again, 404, "BLOB_UNKNOWN")
    head = client.head(f"/v2/{repo}/blobs/{blob.digest}")
    assert head.status_code == 404, describe(head)


def test_deleting_blob_in_one_repository_keeps_it_in_another_strict(client: httpx.Client) -> None:
    first, second = repo_name("management-share"), repo_name("management-share")
    blob = random_blob(33)
    assert push_blob(client, first, blob).status_code == 201
    assert push_blob(client, second, blob).status_code == 201
    assert client.delete(f"/v2/{first}/blobs/{blob.digest}").status_code == 202
    assert client.get(f"/v2/{first}/blobs/{blob.digest}").status_code == 404
    kept = client.get(f"/v2/{second}/blobs/{blob.digest}")
    assert kept.status_code == 200, describe(kept)
    assert kept.content == blob.content
