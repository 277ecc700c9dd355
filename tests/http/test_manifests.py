"""Manifests, tags, catalog and referrers over HTTP, including every refusal."""

from __future__ import annotations

import json
import os

import httpx

from tests.support.push import (
    LAYER,
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    error_code,
    image_manifest,
    push_blob,
    push_image,
    push_manifest,
    sha256,
    unique_repo,
)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def test_exact_bytes_by_tag_and_digest(client: httpx.Client) -> None:
    repo = unique_repo()
    body = image_manifest(client, repo)
    odd = body.replace(b"{", b"{ ", 1) + b"\n"  # not canonical JSON: must come back verbatim
    digest = push_manifest(client, repo, "v1", odd)
    assert digest == sha256(odd)
    for ref in ("v1", digest):
        got = client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert got.status_code == 200
        assert got.content == odd
        assert got.headers["Content-Type"] == OCI_MANIFEST
        assert got.headers["Docker-Content-Digest"] == digest
        head = client.head(f"/v2/{repo}/manifests/{ref}")
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(odd))
    cached = client.get(f"/v2/{repo}/manifests/v1", headers={"If-None-Match": f'"{digest}"'})
    assert cached.status_code == 304
    # A manifest is content like any other: the blobs endpoint serves it too.
    assert client.get(f"/v2/{repo}/blobs/{digest}").content == odd


def test_put_by_digest_must_match(client: httpx.Client) -> None:
    repo = unique_repo()
    body = image_manifest(client, repo)
    resp = client.put(
        f"/v2/{repo}/manifests/{sha256(b'other')}",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status_code == 400 and error_code(resp) == "DIGEST_INVALID"
    assert push_manifest(client, repo, sha256(body), body) == sha256(body)


def test_docker_schema2_image_and_list(client: httpx.Client) -> None:
    repo = unique_repo()
    config = json.dumps({"architecture": "arm64", "os": "linux"}).encode()
    layer = os.urandom(100)
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": descriptor(DOCKER_CONFIG, config),
            "layers": [descriptor(DOCKER_LAYER, layer)],
        }
    ).encode()
    child = push_manifest(client, repo, sha256(manifest), manifest, DOCKER_MANIFEST)
    listing = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_LIST,
            "manifests": [
                {
                    **descriptor(DOCKER_MANIFEST, manifest),
                    "platform": {"os": "linux", "architecture": "arm64"},
                }
            ],
        }
    ).encode()
    push_manifest(client, repo, "multi", listing, DOCKER_LIST)
    got = client.get(
        f"/v2/{repo}/manifests/multi", headers={"Accept": f"{DOCKER_LIST}, {DOCKER_MANIFEST}"}
    )
    assert got.content == listing and got.headers["Content-Type"] == DOCKER_LIST
    assert client.get(f"/v2/{repo}/manifests/{child}").content == manifest


def test_accept_negotiation_for_old_clients(client: httpx.Client) -> None:
    repo = unique_repo()
    push_image(client, repo, "oci")
    resp = client.get(f"/v2/{repo}/manifests/oci", headers={"Accept": DOCKER_MANIFEST})
    assert resp.status_code == 404
    assert error_code(resp) == "MANIFEST_UNKNOWN"
    assert "Accept" in resp.json()["errors"][0]["message"]
    for accept in ("*/*", "", f"{DOCKER_MANIFEST}, {OCI_MANIFEST}", "application/json"):
        assert client.get(f"/v2/{repo}/manifests/oci", headers={"Accept": accept}).is_success
    # One Accept header per type, as skopeo and containers/image send them.
    several = [("Accept", DOCKER_MANIFEST), ("Accept", OCI_MANIFEST)]
    assert client.get(f"/v2/{repo}/manifests/oci", headers=several).is_success


def test_index_requires_its_children(client: httpx.Client) -> None:
    repo = unique_repo()
    child_digest, child = push_image(client, repo, "amd64")
    ghost = b'{"schemaVersion":2}'
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                **descriptor(OCI_MANIFEST, child),
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                **descriptor(OCI_MANIFEST, ghost),
                "platform": {"os": "linux", "architecture": "arm64"},
            },
        ],
    }
    resp = client.put(
        f"/v2/{repo}/manifests/multi",
        content=json.dumps(index).encode(),
        headers={"Content-Type": OCI_INDEX},
    )
    assert resp.status_code == 400 and error_code(resp) == "MANIFEST_UNKNOWN"
    index["manifests"].pop()
    push_manifest(client, repo, "multi", json.dumps(index).encode(), OCI_INDEX)
    assert (
        client.get(f"/v2/{repo}/manifests/multi").json()["manifests"][0]["digest"] == child_digest
    )


def test_manifest_refusals(client: httpx.Client) -> None:
    repo = unique_repo()
    url = f"/v2/{repo}/manifests/latest"
    headers = {"Content-Type": OCI_MANIFEST}
    not_json = client.put(url, content=b"{not json", headers=headers)
    assert not_json.status_code == 400 and error_code(not_json) == "MANIFEST_INVALID"
    missing_layer = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_MANIFEST, b"nope"),
            "layers": [],
        }
    ).encode()
    resp = client.put(url, content=missing_layer, headers=headers)
    assert resp.status_code == 400 and error_code(resp) == "MANIFEST_BLOB_UNKNOWN"
    big = client.put(url, content=b" " * (4 * 1024 * 1024 + 1), headers=headers)
    assert big.status_code == 413 and error_code(big) == "MANIFEST_INVALID"
    bad_tag = client.put(f"/v2/{repo}/manifests/-bad", content=missing_layer, headers=headers)
    assert bad_tag.status_code == 400
    wrong_size = json.loads(image_manifest(client, repo))
    wrong_size["layers"][0]["size"] += 1
    resp = client.put(url, content=json.dumps(wrong_size).encode(), headers=headers)
    assert resp.status_code == 400 and error_code(resp) == "MANIFEST_INVALID"
    assert client.get(url).status_code == 404


def test_blob_from_another_repository_is_mounted_on_manifest_push(client: httpx.Client) -> None:
    source, target = unique_repo(), unique_repo()
    body = image_manifest(client, source)
    push_manifest(client, target, "copied", body)
    layer = json.loads(body)["layers"][0]["digest"]
    assert client.head(f"/v2/{target}/blobs/{layer}").status_code == 200


def test_tag_moves_atomically_and_deletes(client: httpx.Client) -> None:
    repo = unique_repo()
    first, _ = push_image(client, repo, "latest")
    second, _ = push_image(client, repo, "latest")
    assert client.head(f"/v2/{repo}/manifests/latest").headers["Docker-Content-Digest"] == second
    # The old manifest is still there by digest: a tag is only a label.
    assert client.head(f"/v2/{repo}/manifests/{first}").status_code == 200
    assert client.delete(f"/v2/{repo}/manifests/latest").status_code == 202
    assert client.get(f"/v2/{repo}/manifests/latest").status_code == 404
    assert client.head(f"/v2/{repo}/manifests/{second}").status_code == 200
    push_manifest(client, repo, "again", client.get(f"/v2/{repo}/manifests/{second}").content)
    assert client.delete(f"/v2/{repo}/manifests/{second}").status_code == 202
    assert client.get(f"/v2/{repo}/manifests/again").status_code == 404
    gone = client.delete(f"/v2/{repo}/manifests/{second}")
    assert gone.status_code == 404 and error_code(gone) == "MANIFEST_UNKNOWN"


def test_put_with_extra_tags(client: httpx.Client) -> None:
    repo = unique_repo()
    body = image_manifest(client, repo)
    resp = client.put(
        f"/v2/{repo}/manifests/{sha256(body)}?tag=a&tag=b",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert resp.status_code == 201
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["a", "b"]


def test_tag_listing_paging(client: httpx.Client) -> None:
    repo = unique_repo()
    _, body = push_image(client, repo, "z")
    names = ["1.0", "1.10", "1.2", "A", "B", "_x", "a", "latest", "v1", "z"]
    for name in names[:-1]:
        push_manifest(client, repo, name, body)
    listed = client.get(f"/v2/{repo}/tags/list").json()
    assert listed == {"name": repo, "tags": sorted(names)}
    page = client.get(f"/v2/{repo}/tags/list", params={"n": 3})
    assert page.json()["tags"] == sorted(names)[:3]
    assert page.headers["Link"] == f'</v2/{repo}/tags/list?n=3&last=1.2>; rel="next"'
    rest = client.get(f"/v2/{repo}/tags/list", params={"n": 100, "last": "1.2"})
    assert rest.json()["tags"] == sorted(names)[3:] and "Link" not in rest.headers
    assert client.get(f"/v2/{repo}/tags/list", params={"n": 0}).json()["tags"] == []
    bad = client.get(f"/v2/{repo}/tags/list", params={"n": "-1"})
    assert bad.status_code == 400 and bad.json()["errors"]
    unknown = client.get(f"/v2/{unique_repo()}/tags/list")
    assert unknown.status_code == 404 and error_code(unknown) == "NAME_UNKNOWN"


def test_catalog_paging(start_registry) -> None:
    server = start_registry()
    with httpx.Client(base_url=server.url) as c:
        repos = sorted(f"cat/r{i:02d}" for i in range(12))
        for repo in repos:
            push_blob(c, repo, repo.encode())
        assert c.get("/v2/_catalog").json() == {"repositories": repos}
        first = c.get("/v2/_catalog", params={"n": 5})
        assert first.json()["repositories"] == repos[:5]
        assert first.headers["Link"] == '</v2/_catalog?n=5&last=cat%2Fr04>; rel="next"'
        second = c.get("/v2/_catalog", params={"n": 5, "last": repos[4]})
        assert second.json()["repositories"] == repos[5:10]
        assert c.get("/v2/_catalog", params={"n": 0}).json() == {"repositories": []}


def test_referrers(client: httpx.Client) -> None:
    repo = unique_repo()
    subject_digest, subject = push_image(client, repo, "signed")
    empty = push_blob(client, repo, b"{}")
    assert empty == sha256(b"{}")

    def referrer(artifact_type: str, note: str) -> str:
        sig = push_blob(client, repo, note.encode())
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": artifact_type,
                "config": descriptor("application/vnd.oci.empty.v1+json", b"{}"),
                "layers": [{"mediaType": LAYER, "digest": sig, "size": len(note)}],
                "subject": descriptor(OCI_MANIFEST, subject),
                "annotations": {"note": note},
            }
        ).encode()
        resp = client.put(
            f"/v2/{repo}/manifests/{sha256(body)}",
            content=body,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert resp.status_code == 201
        assert resp.headers["OCI-Subject"] == subject_digest
        return resp.headers["Docker-Content-Digest"]

    sig = referrer("application/vnd.example.sig", "sig")
    sbom = referrer("application/vnd.example.sbom", "sbom")
    resp = client.get(f"/v2/{repo}/referrers/{subject_digest}")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(OCI_INDEX)
    index = resp.json()
    assert {m["digest"] for m in index["manifests"]} == {sig, sbom}
    by_digest = {m["digest"]: m for m in index["manifests"]}
    assert by_digest[sig]["artifactType"] == "application/vnd.example.sig"
    assert by_digest[sig]["annotations"] == {"note": "sig"}
    filtered = client.get(
        f"/v2/{repo}/referrers/{subject_digest}",
        params={"artifactType": "application/vnd.example.sbom"},
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in filtered.json()["manifests"]] == [sbom]
    none = client.get(f"/v2/{repo}/referrers/{sha256(b'nothing')}")
    assert none.status_code == 200 and none.json()["manifests"] == []
    bad = client.get(f"/v2/{repo}/referrers/sha256:nothex")
    assert bad.status_code == 400 and error_code(bad) == "DIGEST_INVALID"


def test_referrers_fallback_tag_is_indexed(client: httpx.Client) -> None:
    repo = unique_repo()
    subject_digest, _ = push_image(client, repo, "old-client")
    referrer_digest, referrer = push_image(client, repo, "sig")
    fallback = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {**descriptor(OCI_MANIFEST, referrer), "artifactType": "application/vnd.old.sig"}
            ],
        }
    )
    push_manifest(client, repo, subject_digest.replace(":", "-"), fallback.encode(), OCI_INDEX)
    listed = client.get(f"/v2/{repo}/referrers/{subject_digest}").json()["manifests"]
    assert [(m["digest"], m["artifactType"]) for m in listed] == [
        (referrer_digest, "application/vnd.old.sig")
    ]
