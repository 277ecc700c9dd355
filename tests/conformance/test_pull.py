"""Pull workflow: the conformance suite's "Pull" category, plus the stricter answers Dockyard gives.

The module pushes two configs, one layer, a manifest by tag and another by digest once; the
tests then read them back, and the teardown tests at the end of the file delete them.
Tests named ``..._strict`` check behaviour the spec allows registries to vary on but that
Dockyard commits to; the others accept exactly what the conformance suite accepts.
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
)
from tests.conformance._content import (
    OCI_MANIFEST,
    SPEC_ERROR_CODES,
    Blob,
    Manifest,
    gzip_layer,
    image_config,
    image_manifest,
    repo_name,
    sha256,
)

TAG = "tagtest0"
MISSING_DIGEST = sha256(b"hello world")
# Not a valid tag (a leading dot) and no such manifest: the suite expects a plain 404.
MISSING_REFERENCE = ".INVALID_MANIFEST_NAME"
ACCEPT = {"Accept": OCI_MANIFEST}


@dataclass
class PullContent:
    repo: str
    configs: list[Blob]
    layer: Blob
    manifests: list[Manifest]
    setup: list[tuple[str, httpx.Response]] = field(default_factory=list)


@pytest.fixture(scope="module")
def pulled(mclient: httpx.Client) -> PullContent:
    repo = repo_name("pull")
    configs = [image_config(), image_config()]
    layer = gzip_layer()
    manifests = [image_manifest(c, [layer], inline_config=True) for c in configs]
    content = PullContent(repo, configs, layer, manifests)
    for i, config in enumerate(configs):
        content.setup.append((f"config[{i}] blob", push_blob(mclient, repo, config)))
    content.setup.append(("layer blob", push_blob(mclient, repo, layer)))
    content.setup.append(("manifest[0] by tag", push_manifest(mclient, repo, TAG, manifests[0])))
    content.setup.append(
        ("manifest[1] by digest", push_manifest(mclient, repo, manifests[1].digest, manifests[1]))
    )
    return content


def test_api_version_check(client: httpx.Client) -> None:
    resp = client.get("/v2/")
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("Docker-Distribution-API-Version") == "registry/2.0"


def test_setup_pushes_succeed(pulled: PullContent) -> None:
    for what, resp in pulled.setup:
        assert resp.status_code in OK_2XX, f"{what}: {describe(resp)}"


def test_setup_blob_puts_answer_201_with_location_strict(pulled: PullContent) -> None:
    for what, resp in pulled.setup:
        assert resp.status_code == 201, f"{what}: {describe(resp)}"
        assert resp.headers.get("Location"), f"{what}: no Location"


# --- Pull blobs ---------------------------------------------------------------------------


def test_head_missing_blob_is_404(client: httpx.Client, pulled: PullContent) -> None:
    resp = client.head(f"/v2/{pulled.repo}/blobs/{MISSING_DIGEST}")
    assert resp.status_code == 404, describe(resp)


def test_head_existing_blob_is_200(client: httpx.Client, pulled: PullContent) -> None:
    config = pulled.configs[0]
    resp = client.head(f"/v2/{pulled.repo}/blobs/{config.digest}")
    assert resp.status_code == 200, describe(resp)
    if "Docker-Content-Digest" in resp.headers:
        assert resp.headers["Docker-Content-Digest"] == config.digest


def test_head_existing_blob_headers_strict(client: httpx.Client, pulled: PullContent) -> None:
    config = pulled.configs[0]
    resp = client.head(f"/v2/{pulled.repo}/blobs/{config.digest}")
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("Docker-Content-Digest") == config.digest
    assert resp.headers.get("Content-Length") == str(config.size)
    assert resp.content == b""


def test_get_missing_blob_is_404(client: httpx.Client, pulled: PullContent) -> None:
    resp = client.get(f"/v2/{pulled.repo}/blobs/{MISSING_DIGEST}")
    assert resp.status_code == 404, describe(resp)


def test_get_missing_blob_error_body_strict(client: httpx.Client, pulled: PullContent) -> None:
    resp = client.get(f"/v2/{pulled.repo}/blobs/{MISSING_DIGEST}")
    assert_error(resp, 404, "BLOB_UNKNOWN")


def test_get_existing_blob_is_200(client: httpx.Client, pulled: PullContent) -> None:
    resp = client.get(f"/v2/{pulled.repo}/blobs/{pulled.configs[0].digest}")
    assert resp.status_code == 200, describe(resp)


@pytest.mark.parametrize("which", ["config0", "config1", "layer"])
def test_get_existing_blob_body_and_digest_strict(
    client: httpx.Client, pulled: PullContent, which: str
) -> None:
    blob = {"config0": pulled.configs[0], "config1": pulled.configs[1], "layer": pulled.layer}[
        which
    ]
    resp = client.get(f"/v2/{pulled.repo}/blobs/{blob.digest}")
    assert resp.status_code == 200, describe(resp)
    assert resp.content == blob.content
    assert resp.headers.get("Docker-Content-Digest") == blob.digest
    assert resp.headers.get("Content-Length") == str(blob.size)


def test_blob_is_not_visible_from_other_repository_strict(
    client: httpx.Client, pulled: PullContent
) -> None:
    other = repo_name("pull-other")
    resp = client.get(f"/v2/{other}/blobs/{pulled.configs[0].digest}")
    assert resp.status_code == 404, describe(resp)


# --- Pull manifests -----------------------------------------------------------------------


def test_head_missing_manifest_is_404(client: httpx.Client, pulled: PullContent) -> None:
    resp = client.head(f"/v2/{pulled.repo}/manifests/{MISSING_REFERENCE}")
    assert resp.status_code == 404, describe(resp)


@pytest.mark.parametrize("index", [0, 1])
def test_head_manifest_by_digest_is_200(
    client: httpx.Client, pulled: PullContent, index: int
) -> None:
    manifest = pulled.manifests[index]
    resp = client.head(f"/v2/{pulled.repo}/manifests/{manifest.digest}", headers=ACCEPT)
    assert resp.status_code == 200, describe(resp)
    if "Docker-Content-Digest" in resp.headers:
        assert resp.headers["Docker-Content-Digest"] == manifest.digest


def test_head_manifest_by_tag_is_200(client: httpx.Client, pulled: PullContent) -> None:
    resp = client.head(f"/v2/{pulled.repo}/manifests/{TAG}", headers=ACCEPT)
    assert resp.status_code == 200, describe(resp)
    if "Docker-Content-Digest" in resp.headers:
        assert resp.headers["Docker-Content-Digest"] == pulled.manifests[0].digest


@pytest.mark.parametrize("ref", ["tag", "digest"])
def test_head_manifest_headers_strict(client: httpx.Client, pulled: PullContent, ref: str) -> None:
    manifest = pulled.manifests[0]
    reference = TAG if ref == "tag" else manifest.digest
    resp = client.head(f"/v2/{pulled.repo}/manifests/{reference}", headers=ACCEPT)
    assert resp.status_code == 200, describe(resp)
    assert resp.headers.get("Docker-Content-Digest") == manifest.digest
    assert resp.headers.get("Content-Length") == str(manifest.size)
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == OCI_MANIFEST
    assert resp.content == b""


def test_get_missing_manifest_is_404(client: httpx.Client, pulled: PullContent) -> None:
    resp = client.get(f"/v2/{pulled.repo}/manifests/{MISSING_REFERENCE}")
    assert resp.status_code == 404, describe(resp)


def test_get_missing_tag_error_body_strict(client: httpx.Client, pulled: PullContent) -> None:
    resp = client.get(f"/v2/{pulled.repo}/manifests/no-such-tag", headers=ACCEPT)
    assert_error(resp, 404, "MANIFEST_UNKNOWN")


def test_get_missing_manifest_digest_error_body_strict(
    client: httpx.Client, pulled: PullContent
) -> None:
    resp = client.get(f"/v2/{pulled.repo}/manifests/{MISSING_DIGEST}", headers=ACCEPT)
    assert_error(resp, 404, "MANIFEST_UNKNOWN")


def test_get_manifest_in_unknown_repository_strict(client: httpx.Client) -> None:
    resp = client.get(f"/v2/{repo_name('nowhere')}/manifests/{TAG}", headers=ACCEPT)
    assert_error(resp, 404, ("NAME_UNKNOWN", "MANIFEST_UNKNOWN"))


@pytest.mark.parametrize("index", [0, 1])
def test_get_manifest_by_digest_is_200(
    client: httpx.Client, pulled: PullContent, index: int
) -> None:
    manifest = pulled.manifests[index]
    resp = client.get(f"/v2/{pulled.repo}/manifests/{manifest.digest}", headers=ACCEPT)
    assert resp.status_code == 200, describe(resp)


def test_get_manifest_by_tag_is_200(client: httpx.Client, pulled: PullContent) -> None:
    resp = client.get(f"/v2/{pulled.repo}/manifests/{TAG}", headers=ACCEPT)
    assert resp.status_code == 200, describe(resp)


@pytest.mark.parametrize("ref", ["tag", "digest0", "digest1"])
def test_get_manifest_returns_exact_bytes_strict(
    client: httpx.Client, pulled: PullContent, ref: str
) -> None:
    manifest = pulled.manifests[1] if ref == "digest1" else pulled.manifests[0]
    reference = TAG if ref == "tag" else manifest.digest
    resp = client.get(f"/v2/{pulled.repo}/manifests/{reference}", headers=ACCEPT)
    assert resp.status_code == 200, describe(resp)
    assert resp.content == manifest.content, "manifest bytes differ from what was pushed"
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == OCI_MANIFEST
    assert resp.headers.get("Docker-Content-Digest") == manifest.digest


# --- Error codes --------------------------------------------------------------------------


def test_malformed_digest_reference_is_400_or_404(
    client: httpx.Client, pulled: PullContent
) -> None:
    resp = client.request(
        "GET",
        f"/v2/{pulled.repo}/manifests/sha256:totallywrong",
        headers={"Content-Type": OCI_MANIFEST},
        content=b"blablabla",
    )
    assert resp.status_code in (400, 404), describe(resp)
    if resp.status_code == 400:
        assert error_codes(resp)[0] in SPEC_ERROR_CODES


def test_malformed_digest_reference_error_body_strict(
    client: httpx.Client, pulled: PullContent
) -> None:
    resp = client.get(f"/v2/{pulled.repo}/manifests/sha256:totallywrong", headers=ACCEPT)
    assert resp.status_code in (400, 404), describe(resp)
    codes = error_codes(resp)
    if resp.status_code == 400:
        assert codes[0] in ("DIGEST_INVALID", "MANIFEST_INVALID", "TAG_INVALID"), codes
    else:
        assert codes[0] == "MANIFEST_UNKNOWN", codes


def test_invalid_repository_name_strict(client: httpx.Client) -> None:
    resp = client.get(f"/v2/Conformance/UPPER-{TAG}/manifests/{TAG}", headers=ACCEPT)
    assert_error(resp, (400, 404), ("NAME_INVALID", "NAME_UNKNOWN"))


# --- Teardown (last in the file: pytest runs a module's tests in order) --------------------


def _deleted(resp: httpx.Response, *extra: int) -> bool:
    return resp.status_code in OK_2XX or resp.status_code in (405, *extra)


def test_teardown_delete_manifests(client: httpx.Client, pulled: PullContent) -> None:
    for manifest in pulled.manifests:
        resp = client.delete(f"/v2/{pulled.repo}/manifests/{manifest.digest}")
        assert _deleted(resp), describe(resp)
        assert resp.status_code == 202, f"Dockyard deletes manifests: {describe(resp)}"


def test_teardown_delete_blobs(client: httpx.Client, pulled: PullContent) -> None:
    for blob in [*pulled.configs, pulled.layer]:
        resp = client.delete(f"/v2/{pulled.repo}/blobs/{blob.digest}")
        assert _deleted(resp, 404), describe(resp)
        assert resp.status_code == 202, f"Dockyard deletes blobs: {describe(resp)}"


def test_teardown_content_is_gone_strict(client: httpx.Client, pulled: PullContent) -> None:
    for manifest in pulled.manifests:
        resp = client.get(f"/v2/{pulled.repo}/manifests/{manifest.digest}", headers=ACCEPT)
        assert resp.status_code == 404, describe(resp)
    resp = client.get(f"/v2/{pulled.repo}/manifests/{TAG}", headers=ACCEPT)
    assert resp.status_code == 404, describe(resp)
    for blob in [*pulled.configs, pulled.layer]:
        resp = client.get(f"/v2/{pulled.repo}/blobs/{blob.digest}")
        assert resp.status_code == 404, describe(resp)
