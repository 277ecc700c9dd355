"""Test content for the conformance tests: random blobs, image configs, layers and manifests.

Everything is built in memory with the standard library; digests come from hashlib. The
manifests deliberately carry fields a registry has to store verbatim without understanding
them (an unknown descriptor field, a base64 ``data`` field, explicit ``null`` values), and
they are serialised with tab indentation, so a registry that re-encodes JSON instead of
keeping the pushed bytes is caught by the digest checks.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import secrets
import tarfile
from dataclasses import dataclass, field
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

# Every error code the specification allows in an error body, plus TAG_INVALID and
# MANIFEST_UNVERIFIED, which the conformance suite also accepts.
SPEC_ERROR_CODES = frozenset(
    {
        "BLOB_UNKNOWN",
        "BLOB_UPLOAD_INVALID",
        "BLOB_UPLOAD_UNKNOWN",
        "DIGEST_INVALID",
        "MANIFEST_BLOB_UNKNOWN",
        "MANIFEST_INVALID",
        "MANIFEST_UNKNOWN",
        "MANIFEST_UNVERIFIED",
        "NAME_INVALID",
        "NAME_UNKNOWN",
        "SIZE_INVALID",
        "TAG_INVALID",
        "UNAUTHORIZED",
        "DENIED",
        "UNSUPPORTED",
        "TOOMANYREQUESTS",
    }
)


def sha256(data: bytes) -> str:
    """The OCI digest string of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def random_suffix(n: int = 10) -> str:
    """Lower-case hex, safe inside repository names and tags."""
    return secrets.token_hex(n // 2 + 1)[:n]


def repo_name(kind: str) -> str:
    """A fresh repository name per test module, e.g. ``conformance/pull-1a2b3c4d5e``."""
    return f"conformance/{kind}-{random_suffix()}"


@dataclass(frozen=True)
class Blob:
    """Bytes plus what a descriptor needs to point at them."""

    content: bytes
    media_type: str = "application/octet-stream"

    @property
    def digest(self) -> str:
        return sha256(self.content)

    @property
    def size(self) -> int:
        return len(self.content)

    def descriptor(self, media_type: str | None = None, **extra: Any) -> dict[str, Any]:
        desc: dict[str, Any] = {
            "mediaType": media_type or self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        desc.update(extra)
        return desc


@dataclass(frozen=True)
class Manifest(Blob):
    """A serialised manifest or index; ``media_type`` is the Content-Type to push it with."""

    media_type: str = OCI_MANIFEST
    doc: dict[str, Any] = field(default_factory=dict, compare=False)


def random_blob(size: int) -> Blob:
    return Blob(secrets.token_bytes(size))


def empty_json_blob() -> Blob:
    return Blob(b"{}", OCI_EMPTY)


def image_config(author: str | None = None) -> Blob:
    """A minimal image config; the random author makes its digest unique per call."""
    doc = {
        "author": author or f"dockyard-conformance-{random_suffix(16)}",
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    return Blob(_encode(doc), OCI_CONFIG)


def gzip_layer(text: str | None = None) -> Blob:
    """A real tar+gzip layer holding one small text file."""
    payload = (text or f"dockyard conformance layer {random_suffix(16)}\n").encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("test.txt")
        info.size = len(payload)
        info.mtime = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(payload))
    return Blob(gzip.compress(raw.getvalue(), mtime=0), OCI_LAYER_GZIP)


def image_manifest(
    config: Blob,
    layers: list[Blob] | tuple[Blob, ...] = (),
    *,
    config_media_type: str | None = None,
    layer_media_type: str | None = None,
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: dict[str, str] | None = None,
    with_media_type: bool = True,
    inline_config: bool = False,
    unknown_fields: bool = True,
) -> Manifest:
    """An OCI image manifest.

    ``inline_config`` embeds the config bytes in the descriptor's ``data`` field and
    ``unknown_fields`` adds a field the image spec does not define, so the registry has
    to keep both opaque.
    """
    config_desc = config.descriptor(config_media_type)
    if inline_config:
        config_desc["data"] = base64.b64encode(config.content).decode()
    if unknown_fields:
        config_desc["newUnspecifiedField"] = base64.b64encode(b"hello world").decode()
    layer_descs = []
    for layer in layers:
        desc = layer.descriptor(layer_media_type)
        if unknown_fields:
            desc["newUnspecifiedField"] = None
        layer_descs.append(desc)

    doc: dict[str, Any] = {"schemaVersion": 2}
    if with_media_type:
        doc["mediaType"] = OCI_MANIFEST
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["config"] = config_desc
    doc["layers"] = layer_descs
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations:
        doc["annotations"] = dict(annotations)
    return Manifest(_encode(doc), OCI_MANIFEST, doc)


def image_index(
    manifests: list[Manifest] | tuple[Manifest, ...],
    *,
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: dict[str, str] | None = None,
) -> Manifest:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX}
    if artifact_type:
        doc["artifactType"] = artifact_type
    doc["manifests"] = [m.descriptor() for m in manifests]
    if subject is not None:
        doc["subject"] = subject.descriptor()
    if annotations:
        doc["annotations"] = dict(annotations)
    return Manifest(_encode(doc), OCI_INDEX, doc)


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent="\t").encode()
