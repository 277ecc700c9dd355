"""Push workflow: streamed, monolithic and chunked blob uploads, cross-repository mounts and
manifest uploads, as the conformance suite's "Push" category runs them.

Where the suite's steps depend on each other (each uses the Location of the previous answer),
a module-scoped fixture performs the whole sequence once, in the suite's order, and records
every response; the tests then judge one recorded step each. The fixtures never assert, so a
failing step shows up in the test about that step. Tests named ``..._strict`` check what
Dockyard promises beyond the alternatives the suite accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest

from tests.conformance._client import (
    OCTET,
    OK_2XX,
    assert_error,
    describe,
    location,
    push_blob,
    push_manifest,
    start_upload,
    with_query,
)
from tests.conformance._content import (
    OCI_MANIFEST,
    Blob,
    Manifest,
    gzip_layer,
    image_config,
    image_manifest,
    random_blob,
    random_suffix,
    repo_name,
    sha256,
)

# The suite uses the digest of "hello world"; the registry here is shared by the whole test
# session and mounts automatically, so a digest nothing can ever have pushed is safer.
MISSING_DIGEST = sha256(b"never pushed " + random_suffix(32).encode())
MISSING_REFERENCE = ".INVALID_MANIFEST_NAME"
EMPTY_LAYER_TAG = "emptylayer"


@pytest.fixture(scope="module")
def repo() -> str:
    return repo_name("push")


@pytest.fixture(scope="module")
def mount_repo() -> str:
    return repo_name("push-mount")


@pytest.fixture(scope="module")
def blob_a() -> Blob:
    return random_blob(42)


@pytest.fixture(scope="module")
def config() -> Blob:
    return image_config()


@pytest.fixture(scope="module")
def layer() -> Blob:
    return gzip_layer()


# --- Blob upload, streamed ----------------------------------------------------------------


@dataclass
class Streamed:
    post: httpx.Response
    patch: httpx.Response
    put: httpx.Response


@pytest.fixture(scope="module")
def streamed(mclient: httpx.Client, repo: str, blob_a: Blob) -> Streamed:
    post = mclient.post(f"/v2/{repo}/blobs/uploads/")
    # A PATCH without Content-Range: the whole blob streamed in one request.
    patch = mclient.patch(
        location(post) or f"/v2/{repo}/blobs/uploads/x", content=blob_a.content, headers=OCTET
    )
    put = mclient.put(
        with_query(location(patch) or location(post), digest=blob_a.digest), headers=OCTET
    )
    return Streamed(post, patch, put)


def test_streamed_post_gives_location(streamed: Streamed) -> None:
    assert streamed.post.headers.get("Location"), describe(streamed.post)


def test_streamed_patch_is_202(streamed: Streamed) -> None:
    assert streamed.patch.status_code == 202, describe(streamed.patch)


def test_streamed_patch_headers_strict(streamed: Streamed, blob_a: Blob) -> None:
    assert streamed.patch.headers.get("Location"), describe(streamed.patch)
    assert streamed.patch.headers.get("Range") == f"0-{blob_a.size - 1}", describe(streamed.patch)


def test_streamed_put_with_digest_is_201(streamed: Streamed) -> None:
    assert streamed.put.status_code == 201, describe(streamed.put)
    assert streamed.put.headers.get("Location"), describe(streamed.put)


def test_streamed_blob_is_pullable_strict(
    client: httpx.Client, streamed: Streamed, repo: str, blob_a: Blob
) -> None:
    assert location(streamed.put) == f"/v2/{repo}/blobs/{blob_a.digest}", describe(streamed.put)
    assert streamed.put.headers.get("Docker-Content-Digest") == blob_a.digest
    resp = client.get(location(streamed.put))
    assert resp.status_code == 200, describe(resp)
    assert resp.content == blob_a.content


# --- Blob upload, monolithic --------------------------------------------------------------


def test_monolithic_get_missing_blob_is_404(client: httpx.Client, repo: str) -> None:
    resp = client.get(f"/v2/{repo}/blobs/{MISSING_DIGEST}")
    assert resp.status_code == 404, describe(resp)


@dataclass
class Monolithic:
    single_post: httpx.Response
    get_after_single_post: httpx.Response
    session_post: httpx.Response
    put: httpx.Response
    get_after_put: httpx.Response
    layer_put: httpx.Response
    layer_get: httpx.Response


@pytest.fixture(scope="module")
def monolithic(
    mclient: httpx.Client, repo: str, config: Blob, layer: Blob, streamed: Streamed
) -> Monolithic:
    single_post = mclient.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": config.digest},
        content=config.content,
        headers=OCTET,
    )
    get_after_single_post = mclient.get(f"/v2/{repo}/blobs/{config.digest}")
    session_post = mclient.post(f"/v2/{repo}/blobs/uploads/")
    put = mclient.put(
        with_query(location(session_post), digest=config.digest),
        content=config.content,
        headers=OCTET,
    )
    get_after_put = mclient.get(f"/v2/{repo}/blobs/{config.digest}")
    layer_put = push_blob(mclient, repo, layer)
    layer_get = mclient.get(f"/v2/{repo}/blobs/{layer.digest}")
    return Monolithic(
        single_post, get_after_single_post, session_post, put, get_after_put, layer_put, layer_get
    )


def test_single_post_with_digest_is_201_or_202(monolithic: Monolithic) -> None:
    resp = monolithic.single_post
    assert resp.headers.get("Location"), describe(resp)
    assert resp.status_code in (201, 202), describe(resp)


def test_single_post_with_digest_is_201_strict(
    monolithic: Monolithic, repo: str, config: Blob
) -> None:
    resp = monolithic.single_post
    assert resp.status_code == 201, describe(resp)
    assert location(resp) == f"/v2/{repo}/blobs/{config.digest}", describe(resp)
    assert resp.headers.get("Docker-Content-Digest") == config.digest


def test_get_after_single_post_matches_its_status(monolithic: Monolithic) -> None:
    expected = 404 if monolithic.single_post.status_code == 202 else 200
    assert monolithic.get_after_single_post.status_code == expected, describe(
        monolithic.get_after_single_post
    )


def test_post_yields_session(monolithic: Monolithic, repo: str) -> None:
    resp = monolithic.session_post
    assert resp.status_code == 202, describe(resp)
    assert location(resp).startswith(f"/v2/{repo}/blobs/uploads/"), describe(resp)


def test_put_upload_of_blob_is_201(monolithic: Monolithic) -> None:
    assert monolithic.put.headers.get("Location"), describe(monolithic.put)
    assert monolithic.put.status_code == 201, describe(monolithic.put)


def test_get_existing_blob_is_200(monolithic: Monolithic, config: Blob) -> None:
    assert monolithic.get_after_put.status_code == 200, describe(monolithic.get_after_put)
    assert monolithic.get_after_put.content == config.content


def test_put_upload_of_layer_is_201(monolithic: Monolithic) -> None:
    assert monolithic.layer_put.headers.get("Location"), describe(monolithic.layer_put)
    assert monolithic.layer_put.status_code == 201, describe(monolithic.layer_put)


def test_get_existing_layer_is_200(monolithic: Monolithic, layer: Blob) -> None:
    assert monolithic.layer_get.status_code == 200, describe(monolithic.layer_get)
    assert monolithic.layer_get.content == layer.content


def test_put_with_wrong_digest_is_digest_invalid_strict(client: httpx.Client, repo: str) -> None:
    blob = random_blob(64)
    post = start_upload(client, repo)
    assert post.status_code == 202, describe(post)
    resp = client.put(
        with_query(location(post), digest=sha256(b"something else")),
        content=blob.content,
        headers=OCTET,
    )
    assert_error(resp, 400, "DIGEST_INVALID")
    assert client.head(f"/v2/{repo}/blobs/{blob.digest}").status_code == 404


def test_single_post_with_wrong_digest_is_digest_invalid_strict(
    client: httpx.Client, repo: str
) -> None:
    blob = random_blob(64)
    resp = client.post(
        f"/v2/{repo}/blobs/uploads/",
        params={"digest": sha256(b"nope")},
        content=blob.content,
        headers=OCTET,
    )
    assert_error(resp, 400, "DIGEST_INVALID")


def test_put_with_malformed_digest_is_400_strict(client: httpx.Client, repo: str) -> None:
    post = start_upload(client, repo)
    assert post.status_code == 202, describe(post)
    resp = client.put(
        with_query(location(post), digest="sha256:not-hex"), content=b"data", headers=OCTET
    )
    assert_error(resp, 400, "DIGEST_INVALID")


def test_unknown_upload_session_strict(client: httpx.Client, repo: str) -> None:
    url = f"/v2/{repo}/blobs/uploads/{random_suffix(32)}"
    assert_error(client.get(url), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(url, content=b"abc", headers=OCTET), 404, "BLOB_UPLOAD_UNKNOWN")
    resp = client.put(with_query(url, digest=sha256(b"abc")), content=b"abc", headers=OCTET)
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN")


def test_finished_upload_session_is_gone_strict(client: httpx.Client, repo: str) -> None:
    blob = random_blob(32)
    post = start_upload(client, repo)
    session = location(post)
    put = client.put(with_query(session, digest=blob.digest), content=blob.content, headers=OCTET)
    assert put.status_code == 201, describe(put)
    assert_error(client.get(session), 404, "BLOB_UPLOAD_UNKNOWN")


# --- Blob upload, chunked -----------------------------------------------------------------


@dataclass
class Chunked:
    blob: Blob
    chunk1: bytes
    chunk2: bytes
    steps: dict[str, httpx.Response] = field(default_factory=dict)

    @property
    def range1(self) -> str:
        return f"0-{len(self.chunk1) - 1}"

    @property
    def range2(self) -> str:
        return f"{len(self.chunk1)}-{self.blob.size - 1}"


def _split(blob: Blob) -> tuple[bytes, bytes]:
    cut = blob.size // 2 + 1
    return blob.content[:cut], blob.content[cut:]


@pytest.fixture(scope="module")
def chunked(mclient: httpx.Client, repo: str, monolithic: Monolithic) -> Chunked:
    blob = random_blob(42)
    c1, c2 = _split(blob)
    run = Chunked(blob, c1, c2)
    steps = run.steps

    first = start_upload(mclient, repo)
    steps["post_for_out_of_order"] = first
    min_length = first.headers.get("OCI-Chunk-Min-Length")
    if min_length and min_length.isdigit() and int(min_length) > len(c1):
        # The registry wants bigger chunks: size the blob so the first chunk is big enough.
        run.blob = random_blob(int(min_length) * 2 - 2)
        run.chunk1, run.chunk2 = _split(run.blob)
    steps["out_of_order_patch"] = mclient.patch(
        location(first), content=run.chunk2, headers={**OCTET, "Content-Range": run.range2}
    )

    post = start_upload(mclient, repo)
    steps["post"] = post
    steps["patch1"] = mclient.patch(
        location(post), content=run.chunk1, headers={**OCTET, "Content-Range": run.range1}
    )
    # The suite retries the first chunk on the Location of the POST, not of the PATCH.
    steps["retry_patch1"] = mclient.patch(
        location(post), content=run.chunk1, headers={**OCTET, "Content-Range": run.range1}
    )
    steps["status"] = mclient.get(location(post))
    steps["patch2"] = mclient.patch(
        location(steps["status"]) or location(post),
        content=run.chunk2,
        headers={**OCTET, "Content-Range": run.range2},
    )
    steps["put"] = mclient.put(
        with_query(location(steps["patch2"]) or location(post), digest=run.blob.digest),
        headers={**OCTET, "Content-Length": "0"},
    )
    steps["get"] = mclient.get(f"/v2/{repo}/blobs/{run.blob.digest}")
    return run


def test_chunk_min_length_header_is_a_number_if_present(chunked: Chunked) -> None:
    post = chunked.steps["post_for_out_of_order"]
    assert post.headers.get("Location"), describe(post)
    if "OCI-Chunk-Min-Length" in post.headers:
        assert post.headers["OCI-Chunk-Min-Length"].isdigit(), describe(post)


def test_out_of_order_chunk_is_416(chunked: Chunked) -> None:
    resp = chunked.steps["out_of_order_patch"]
    assert resp.status_code == 416, describe(resp)


def test_first_chunk_is_202_with_range(chunked: Chunked) -> None:
    assert chunked.steps["post"].headers.get("Location"), describe(chunked.steps["post"])
    resp = chunked.steps["patch1"]
    assert resp.status_code == 202, describe(resp)
    assert resp.headers.get("Range") == chunked.range1, describe(resp)


def test_first_chunk_has_location_strict(chunked: Chunked, repo: str) -> None:
    resp = chunked.steps["patch1"]
    assert location(resp).startswith(f"/v2/{repo}/blobs/uploads/"), describe(resp)


def test_retrying_first_chunk_is_416(chunked: Chunked) -> None:
    resp = chunked.steps["retry_patch1"]
    assert resp.status_code == 416, describe(resp)


def test_get_on_stale_upload_is_204_with_range_and_location(chunked: Chunked) -> None:
    resp = chunked.steps["status"]
    assert resp.status_code == 204, describe(resp)
    assert resp.headers.get("Location"), describe(resp)
    assert resp.headers.get("Range") == chunked.range1, describe(resp)


def test_second_chunk_is_202(chunked: Chunked) -> None:
    resp = chunked.steps["patch2"]
    assert resp.status_code == 202, describe(resp)
    assert resp.headers.get("Location"), describe(resp)


def test_second_chunk_range_covers_whole_blob_strict(chunked: Chunked) -> None:
    resp = chunked.steps["patch2"]
    assert resp.headers.get("Range") == f"0-{chunked.blob.size - 1}", describe(resp)


def test_closing_put_is_201(chunked: Chunked) -> None:
    resp = chunked.steps["put"]
    assert resp.status_code == 201, describe(resp)
    assert resp.headers.get("Location"), describe(resp)


def test_chunked_blob_is_pullable_strict(chunked: Chunked, repo: str) -> None:
    put = chunked.steps["put"]
    assert location(put) == f"/v2/{repo}/blobs/{chunked.blob.digest}", describe(put)
    resp = chunked.steps["get"]
    assert resp.status_code == 200, describe(resp)
    assert resp.content == chunked.blob.content


def test_final_chunk_in_closing_put_strict(client: httpx.Client, repo: str) -> None:
    blob = random_blob(100)
    c1, c2 = blob.content[:60], blob.content[60:]
    post = start_upload(client, repo)
    patch = client.patch(location(post), content=c1, headers={**OCTET, "Content-Range": "0-59"})
    assert patch.status_code == 202, describe(patch)
    put = client.put(
        with_query(location(patch), digest=blob.digest),
        content=c2,
        headers={**OCTET, "Content-Range": f"60-{blob.size - 1}"},
    )
    assert put.status_code == 201, describe(put)
    resp = client.get(f"/v2/{repo}/blobs/{blob.digest}")
    assert resp.status_code == 200, describe(resp)
    assert resp.content == blob.content


def test_chunk_with_gap_is_416_and_keeps_offset_strict(client: httpx.Client, repo: str) -> None:
    post = start_upload(client, repo)
    first = client.patch(
        location(post), content=b"0123456789", headers={**OCTET, "Content-Range": "0-9"}
    )
    assert first.status_code == 202, describe(first)
    gap = client.patch(
        location(first), content=b"abcdef", headers={**OCTET, "Content-Range": "11-16"}
    )
    assert gap.status_code == 416, describe(gap)
    status = client.get(location(first))
    assert status.status_code == 204, describe(status)
    assert status.headers.get("Range") == "0-9", describe(status)


# --- Cross-repository blob mount ----------------------------------------------------------


@dataclass
class Mounts:
    without_from_missing: httpx.Response
    with_from: httpx.Response
    get_mounted: httpx.Response
    without_from_present: httpx.Response


@pytest.fixture(scope="module")
def mounts(
    mclient: httpx.Client, repo: str, mount_repo: str, streamed: Streamed, blob_a: Blob
) -> Mounts:
    without_from_missing = start_upload(mclient, mount_repo, mount=MISSING_DIGEST)
    with_from = start_upload(mclient, mount_repo, mount=blob_a.digest, **{"from": repo})
    get_mounted = mclient.get(location(with_from) or f"/v2/{mount_repo}/blobs/{blob_a.digest}")
    without_from_present = start_upload(mclient, mount_repo, mount=blob_a.digest)
    return Mounts(without_from_missing, with_from, get_mounted, without_from_present)


def test_mount_without_from_of_missing_blob_yields_session(mounts: Mounts, mount_repo: str) -> None:
    resp = mounts.without_from_missing
    assert resp.status_code == 202, describe(resp)
    assert resp.headers.get("Location"), describe(resp)


def test_mount_without_from_of_missing_blob_session_is_in_target_strict(
    mounts: Mounts, mount_repo: str
) -> None:
    resp = mounts.without_from_missing
    assert location(resp).startswith(f"/v2/{mount_repo}/blobs/uploads/"), describe(resp)


def test_mount_from_other_repository_is_201_or_202(mounts: Mounts) -> None:
    assert mounts.with_from.status_code in (201, 202), describe(mounts.with_from)


def test_mount_from_other_repository_is_201_strict(mounts: Mounts) -> None:
    assert mounts.with_from.status_code == 201, describe(mounts.with_from)


def test_mounted_blob_location_and_content(mounts: Mounts, mount_repo: str, blob_a: Blob) -> None:
    if mounts.with_from.status_code == 201:
        assert location(mounts.with_from) == f"/v2/{mount_repo}/blobs/{blob_a.digest}"
        assert mounts.get_mounted.status_code == 200, describe(mounts.get_mounted)
        assert mounts.get_mounted.content == blob_a.content
    else:
        # The registry declined to mount: the answer must be an upload session in the target.
        assert location(mounts.with_from).startswith(f"/v2/{mount_repo}/blobs/uploads/")


def test_automatic_mount_without_from_is_201(mounts: Mounts, mount_repo: str, blob_a: Blob) -> None:
    """The suite's OCI_AUTOMATIC_CROSSMOUNT=true check: Dockyard always mounts automatically."""
    assert mounts.with_from.status_code == 201, "precondition: mount with from= worked"
    resp = mounts.without_from_present
    assert resp.status_code == 201, describe(resp)
    assert location(resp) == f"/v2/{mount_repo}/blobs/{blob_a.digest}", describe(resp)


def test_automatic_mount_from_a_repository_not_named_strict(
    client: httpx.Client, repo: str, config: Blob, monolithic: Monolithic
) -> None:
    """A blob that exists only in another repository is mounted without ``from=``."""
    target = repo_name("push-automount")
    assert client.get(f"/v2/{target}/blobs/{config.digest}").status_code == 404
    resp = start_upload(client, target, mount=config.digest)
    assert resp.status_code == 201, describe(resp)
    assert location(resp) == f"/v2/{target}/blobs/{config.digest}", describe(resp)
    assert resp.headers.get("Docker-Content-Digest", config.digest) == config.digest
    got = client.get(f"/v2/{target}/blobs/{config.digest}")
    assert got.status_code == 200, describe(got)
    assert got.content == config.content


def test_mount_with_from_of_missing_blob_is_usable_session_strict(
    client: httpx.Client, repo: str
) -> None:
    target = repo_name("push-mountmiss")
    blob = random_blob(50)
    resp = start_upload(client, target, mount=blob.digest, **{"from": repo})
    assert resp.status_code == 202, describe(resp)
    assert location(resp).startswith(f"/v2/{target}/blobs/uploads/"), describe(resp)
    put = client.put(
        with_query(location(resp), digest=blob.digest), content=blob.content, headers=OCTET
    )
    assert put.status_code == 201, describe(put)


# --- Manifest upload ----------------------------------------------------------------------


def test_get_missing_manifest_is_404(client: httpx.Client, repo: str) -> None:
    resp = client.get(f"/v2/{repo}/manifests/{MISSING_REFERENCE}")
    assert resp.status_code == 404, describe(resp)


@dataclass
class ManifestPush:
    manifest: Manifest
    empty_layer: Manifest
    tag_puts: list[httpx.Response]
    empty_layer_put: httpx.Response
    get_by_digest: httpx.Response


@pytest.fixture(scope="module")
def manifest_push(
    mclient: httpx.Client,
    repo: str,
    config: Blob,
    layer: Blob,
    monolithic: Monolithic,
    mounts: Mounts,
    chunked: Chunked,
) -> ManifestPush:
    manifest = image_manifest(config, [layer], inline_config=True)
    # No "mediaType" field and no layers: registries must still accept it.
    empty_layer = image_manifest(config, [], with_media_type=False, inline_config=True)
    tag_puts = [push_manifest(mclient, repo, f"test{i}", manifest) for i in range(4)]
    empty_layer_put = push_manifest(mclient, repo, EMPTY_LAYER_TAG, empty_layer)
    get_by_digest = mclient.get(
        f"/v2/{repo}/manifests/{manifest.digest}", headers={"Accept": OCI_MANIFEST}
    )
    return ManifestPush(manifest, empty_layer, tag_puts, empty_layer_put, get_by_digest)


def test_put_manifest_is_201(manifest_push: ManifestPush) -> None:
    for resp in manifest_push.tag_puts:
        assert resp.headers.get("Location"), describe(resp)
        assert resp.status_code == 201, describe(resp)


def test_put_manifest_headers_strict(manifest_push: ManifestPush, repo: str) -> None:
    digest = manifest_push.manifest.digest
    for resp in manifest_push.tag_puts:
        assert resp.headers.get("Docker-Content-Digest") == digest, describe(resp)
        assert location(resp) == f"/v2/{repo}/manifests/{digest}", describe(resp)
        assert "OCI-Subject" not in resp.headers, describe(resp)


def test_put_manifest_without_layers(manifest_push: ManifestPush) -> None:
    resp = manifest_push.empty_layer_put
    # The suite only warns when this is refused; Dockyard must accept it.
    assert resp.status_code == 201, describe(resp)
    assert resp.headers.get("Location"), describe(resp)


def test_get_manifest_by_digest_is_200(manifest_push: ManifestPush) -> None:
    resp = manifest_push.get_by_digest
    assert resp.status_code == 200, describe(resp)


def test_get_manifest_by_digest_exact_strict(manifest_push: ManifestPush) -> None:
    resp = manifest_push.get_by_digest
    assert resp.content == manifest_push.manifest.content
    assert resp.headers.get("Docker-Content-Digest") == manifest_push.manifest.digest
    assert resp.headers.get("Content-Type", "").split(";")[0].strip() == OCI_MANIFEST


def test_put_manifest_by_digest_reference_strict(
    client: httpx.Client, repo: str, config: Blob, manifest_push: ManifestPush
) -> None:
    manifest = image_manifest(config, [], annotations={"k": random_suffix()})
    resp = push_manifest(client, repo, manifest.digest, manifest)
    assert resp.status_code == 201, describe(resp)
    assert resp.headers.get("Docker-Content-Digest") == manifest.digest


def test_put_manifest_with_mismatched_digest_reference_strict(
    client: httpx.Client, repo: str, config: Blob, monolithic: Monolithic
) -> None:
    manifest = image_manifest(config, [], annotations={"k": random_suffix()})
    resp = push_manifest(client, repo, sha256(b"another manifest"), manifest)
    assert_error(resp, 400, ("DIGEST_INVALID", "MANIFEST_INVALID"))


def test_put_invalid_manifest_is_manifest_invalid_strict(client: httpx.Client, repo: str) -> None:
    resp = client.put(
        f"/v2/{repo}/manifests/broken", content=b"blablabla", headers={"Content-Type": OCI_MANIFEST}
    )
    assert_error(resp, 400, "MANIFEST_INVALID")


def test_put_manifest_with_unknown_blob(client: httpx.Client, repo: str) -> None:
    """The spec lets a registry refuse this, but then only with MANIFEST_BLOB_UNKNOWN."""
    manifest = image_manifest(image_config(), [gzip_layer()])
    resp = push_manifest(client, repo, "dangling", manifest)
    if resp.status_code not in OK_2XX:
        assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN")


def test_put_manifest_with_too_long_tag_is_refused_strict(
    client: httpx.Client, repo: str, config: Blob, monolithic: Monolithic
) -> None:
    manifest = image_manifest(config, [])
    resp = push_manifest(client, repo, "t" * 129, manifest)
    assert_error(resp, (400, 404), ("TAG_INVALID", "MANIFEST_INVALID", "NAME_INVALID"))


def test_push_to_invalid_repository_name_strict(client: httpx.Client) -> None:
    resp = client.post("/v2/Conformance/UPPER/blobs/uploads/")
    assert_error(resp, (400, 404), ("NAME_INVALID", "NAME_UNKNOWN"))


# --- Teardown -----------------------------------------------------------------------------


def test_teardown_delete_manifests(
    client: httpx.Client, repo: str, manifest_push: ManifestPush
) -> None:
    digests = [manifest_push.manifest.digest]
    if manifest_push.empty_layer_put.status_code == 201:
        digests.append(manifest_push.empty_layer.digest)
    for digest in digests:
        resp = client.delete(f"/v2/{repo}/manifests/{digest}")
        assert resp.status_code in OK_2XX or resp.status_code == 405, describe(resp)
        assert resp.status_code == 202, f"Dockyard deletes manifests: {describe(resp)}"


def test_teardown_delete_blobs(
    client: httpx.Client, repo: str, config: Blob, layer: Blob, manifest_push: ManifestPush
) -> None:
    for blob in (config, layer):
        resp = client.delete(f"/v2/{repo}/blobs/{blob.digest}")
        assert resp.status_code in OK_2XX or resp.status_code in (404, 405), describe(resp)
        assert resp.status_code == 202, f"Dockyard deletes blobs: {describe(resp)}"
