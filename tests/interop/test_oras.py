"""oras-py (the ORAS Python SDK) against Dockyard: artifacts, tags, chunked pushes, referrers."""

from __future__ import annotations

import hashlib
import json
import random
import types
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.images import MT_OCI_INDEX, MT_OCI_MANIFEST
from tests.support.peers import require_module, unique_repo
from tests.support.server import RunningRegistry

oras_client = require_module("oras.client")
oras_oci = require_module("oras.oci")

TITLE = "org.opencontainers.image.title"
EMPTY_CONFIG = b"{}"
MT_EMPTY = "application/vnd.oci.empty.v1+json"


@pytest.fixture
def client(registry: RunningRegistry):
    client = oras_client.OrasClient(hostname=registry.host, insecure=True)
    # oras-py retries every failed request (any 500 included) five times with sleeps of
    # 3 + 3**n seconds: over two minutes per request. Call the undecorated method so a server
    # error fails the test at once with the server's answer.
    undecorated = getattr(type(client).do_request, "__wrapped__", None)
    if undecorated is not None:
        client.do_request = types.MethodType(undecorated, client)
    return client


def make_files(folder: Path, seed: str, sizes: dict[str, int]) -> dict[str, bytes]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    contents = {name: rng.randbytes(size) for name, size in sizes.items()}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
    return contents


def manifest_of(registry: RunningRegistry, repo: str, reference: str) -> httpx.Response:
    response = httpx.get(
        f"{registry.url}/v2/{repo}/manifests/{reference}",
        headers={"Accept": f"{MT_OCI_MANIFEST}, {MT_OCI_INDEX}"},
    )
    assert response.status_code == 200, response.text
    return response


def test_push_pull_files(client, registry: RunningRegistry, tmp_path: Path) -> None:
    files = make_files(
        tmp_path / "in", "oras-files", {"readme.txt": 300, "payload.bin": 70_000, "empty.dat": 0}
    )
    repo = unique_repo("oras-files")
    target = f"{registry.host}/{repo}:v1"

    response = client.push(
        target=target,
        disable_path_validation=True,
        files=[
            str(tmp_path / "in" / "readme.txt") + ":text/plain",
            str(tmp_path / "in" / "payload.bin"),
            str(tmp_path / "in" / "empty.dat"),
        ],
        manifest_annotations={"org.dockyard.test": "oras"},
        quiet=True,
    )
    assert response.status_code == 201
    pushed_digest = response.headers["Docker-Content-Digest"]

    served = manifest_of(registry, repo, "v1")
    assert images.sha256_digest(served.content) == pushed_digest
    manifest = client.get_manifest(target)
    assert manifest["annotations"]["org.dockyard.test"] == "oras"
    layers = {layer["annotations"][TITLE]: layer for layer in manifest["layers"]}
    assert set(layers) == set(files)
    assert layers["readme.txt"]["mediaType"] == "text/plain"
    for name, data in files.items():
        assert layers[name]["digest"] == images.sha256_digest(data)
        assert layers[name]["size"] == len(data)

    pulled = client.pull(target=target, outdir=str(tmp_path / "out"))
    assert sorted(Path(p).name for p in pulled) == sorted(files)
    for name, data in files.items():
        assert (tmp_path / "out" / name).read_bytes() == data


def test_push_pull_chunked(client, registry: RunningRegistry, tmp_path: Path) -> None:
    """Chunked uploads (POST, several PATCHes with Content-Range, PUT) of odd-sized chunks."""
    files = make_files(tmp_path / "in", "oras-chunked", {"big.bin": 1_000_003})
    repo = unique_repo("oras-chunked")
    target = f"{registry.host}/{repo}:chunked"
    client.push(
        target=target,
        disable_path_validation=True,
        files=[str(tmp_path / "in" / "big.bin")],
        do_chunked=True,
        chunk_size=256 * 1024 + 7,
        quiet=True,
    )
    client.pull(target=target, outdir=str(tmp_path / "out"))
    data = (tmp_path / "out" / "big.bin").read_bytes()
    assert hashlib.sha256(data).digest() == hashlib.sha256(files["big.bin"]).digest()


def test_get_tags(client, registry: RunningRegistry, tmp_path: Path) -> None:
    make_files(tmp_path / "in", "oras-tags", {"a.txt": 10})
    repo = unique_repo("oras-tags")
    tags = ["v1", "v2", "v3", "latest", "stable"]
    for tag in tags:
        client.push(
            target=f"{registry.host}/{repo}:{tag}",
            disable_path_validation=True,
            files=[str(tmp_path / "in" / "a.txt")],
            quiet=True,
        )
    assert sorted(client.get_tags(f"{registry.host}/{repo}")) == sorted(tags)
    # N asks for a page size; oras follows Link headers until it has enough.
    some = client.get_tags(f"{registry.host}/{repo}", N=2)
    assert len(some) == 2
    assert set(some) <= set(tags)


def push_empty_config_referrer(
    registry: RunningRegistry, repo: str, subject: dict, artifact_type: str, payload: bytes
) -> tuple[str, bytes]:
    """A referrer with an explicit artifactType and the empty config, pushed with httpx."""
    with httpx.Client(base_url=registry.url, timeout=60) as http:
        for blob in (EMPTY_CONFIG, payload):
            digest = images.sha256_digest(blob)
            started = http.post(f"/v2/{repo}/blobs/uploads/")
            assert started.status_code == 202, started.text
            location = started.headers["location"]
            sep = "&" if "?" in location else "?"
            done = http.put(
                f"{location}{sep}digest={digest}",
                content=blob,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert done.status_code == 201, done.text
        manifest = {
            "schemaVersion": 2,
            "mediaType": MT_OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {
                "mediaType": MT_EMPTY,
                "digest": images.sha256_digest(EMPTY_CONFIG),
                "size": len(EMPTY_CONFIG),
            },
            "layers": [
                {
                    "mediaType": "application/octet-stream",
                    "digest": images.sha256_digest(payload),
                    "size": len(payload),
                }
            ],
            "subject": subject,
            "annotations": {"org.dockyard.test": "explicit-artifact-type"},
        }
        body = images.canonical_json(manifest)
        digest = images.sha256_digest(body)
        put = http.put(
            f"/v2/{repo}/manifests/{digest}",
            content=body,
            headers={"Content-Type": MT_OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text
        assert put.headers.get("OCI-Subject") == subject["digest"], dict(put.headers)
        return digest, body


def test_referrers(client, registry: RunningRegistry, tmp_path: Path) -> None:
    make_files(tmp_path / "in", "oras-referrers", {"subject.txt": 64, "sbom.json": 256})
    repo = unique_repo("oras-referrers")
    client.push(
        target=f"{registry.host}/{repo}:subject",
        disable_path_validation=True,
        files=[str(tmp_path / "in" / "subject.txt")],
        quiet=True,
    )
    served = manifest_of(registry, repo, "subject")
    subject_digest = served.headers["Docker-Content-Digest"]
    subject = oras_oci.Subject(
        mediaType=MT_OCI_MANIFEST, digest=subject_digest, size=len(served.content)
    )

    # oras-py has no artifactType: the referrers API then reports the config media type.
    sbom_type = "application/vnd.dockyard.test.sbom+json"
    (tmp_path / "in" / "config.json").write_text("{}")
    pushed = client.push(
        target=f"{registry.host}/{repo}:sbom",
        disable_path_validation=True,
        files=[str(tmp_path / "in" / "sbom.json")],
        manifest_config=f"{tmp_path / 'in' / 'config.json'}:{sbom_type}",
        subject=subject,
        quiet=True,
    )
    sbom_digest = pushed.headers["Docker-Content-Digest"]
    assert pushed.headers.get("OCI-Subject") == subject_digest, dict(pushed.headers)
    sbom_size = len(manifest_of(registry, repo, sbom_digest).content)

    sig_type = "application/vnd.dockyard.test.signature"
    sig_digest, sig_body = push_empty_config_referrer(
        registry,
        repo,
        {"mediaType": MT_OCI_MANIFEST, "digest": subject_digest, "size": len(served.content)},
        sig_type,
        b"signature-bytes",
    )

    response = httpx.get(f"{registry.url}/v2/{repo}/referrers/{subject_digest}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == MT_OCI_INDEX
    index = response.json()
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == MT_OCI_INDEX
    found = {m["digest"]: m for m in index["manifests"]}
    assert set(found) == {sbom_digest, sig_digest}, json.dumps(index, indent=1)
    assert found[sbom_digest]["artifactType"] == sbom_type
    assert found[sbom_digest]["mediaType"] == MT_OCI_MANIFEST
    assert found[sbom_digest]["size"] == sbom_size
    assert found[sig_digest]["artifactType"] == sig_type
    assert found[sig_digest]["size"] == len(sig_body)
    assert found[sig_digest]["annotations"]["org.dockyard.test"] == "explicit-artifact-type"

    # Filtering is optional in the spec; when applied it must be announced and be right.
    filtered = httpx.get(
        f"{registry.url}/v2/{repo}/referrers/{subject_digest}", params={"artifactType": sig_type}
    )
    assert filtered.status_code == 200
    if "artifactType" in filtered.headers.get("OCI-Filters-Applied", ""):
        assert [m["digest"] for m in filtered.json()["manifests"]] == [sig_digest]

    # A digest nothing refers to: an empty index, not an error.
    nothing = httpx.get(f"{registry.url}/v2/{repo}/referrers/{sbom_digest}")
    assert nothing.status_code == 200, nothing.text
    assert nothing.json()["manifests"] == []
