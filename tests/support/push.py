"""Small helpers that push content over plain HTTP, for tests of the server's own API."""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def unique_repo(prefix: str = "test") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


def push_blob(client: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data)
    assert resp.status_code == 201, resp.text
    return digest


def descriptor(media_type: str, data: bytes, **extra: object) -> dict:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def image_manifest(
    client: httpx.Client, repo: str, *, layers: int = 1, extra: dict | None = None
) -> bytes:
    """Push a config and random layers; return a manifest body referencing them (not pushed)."""
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}
    ).encode()
    push_blob(client, repo, config)
    layer_blobs = [os.urandom(256) for _ in range(layers)]
    for blob in layer_blobs:
        push_blob(client, repo, blob)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config),
        "layers": [descriptor(LAYER, blob) for blob in layer_blobs],
        **(extra or {}),
    }
    return json.dumps(manifest).encode()


def push_manifest(
    client: httpx.Client, repo: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
) -> str:
    resp = client.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )
    assert resp.status_code == 201, resp.text
    return resp.headers["Docker-Content-Digest"]


def push_image(client: httpx.Client, repo: str, tag: str, **kwargs: object) -> tuple[str, bytes]:
    body = image_manifest(client, repo, **kwargs)  # type: ignore[arg-type]
    return push_manifest(client, repo, tag, body), body


# The error codes of the distribution spec (and Docker's TOOMANYREQUESTS): every error body the
# registry sends carries one of these.
SPEC_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)


def error_code(resp: httpx.Response) -> str:
    return resp.json()["errors"][0]["code"]
