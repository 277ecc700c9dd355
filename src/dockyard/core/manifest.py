"""Parsing and validating manifests and indexes, and deriving what they reference.

The registry stores the bytes exactly as pushed; this module only reads them to check that they
are what they claim to be and to learn which blobs, child manifests and subject they point to.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.core import jsontext
from dockyard.core import mediatypes as mt
from dockyard.core.digest import Digest
from dockyard.core.errors import ErrorCode, RegistryError

MAX_MANIFEST_BYTES = 4 * 1024 * 1024

# Layers that live elsewhere (Windows base layers): the registry never holds their bytes.
FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    data: bytes | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None
    platform: dict[str, Any] | None = None
    annotations: dict[str, str] | None = None

    @property
    def is_foreign(self) -> bool:
        return self.media_type in FOREIGN_LAYER_TYPES or bool(self.urls)


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    children: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    config_media_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES

    @property
    def referrer_artifact_type(self) -> str | None:
        """What the referrers API reports: artifactType, else the config's media type."""
        return self.artifact_type or self.config_media_type


def _invalid(message: str) -> RegistryError:
    return RegistryError(ErrorCode.MANIFEST_INVALID, message)


def _parse_descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise _invalid(f"{where}: descriptor must be an object")
    media_type = raw.get("mediaType")
    digest = raw.get("digest")
    size = raw.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}: mediaType missing")
    if not isinstance(digest, str) or Digest.try_parse(digest) is None:
        raise _invalid(f"{where}: digest missing or invalid")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise _invalid(f"{where}: size missing or invalid")
    data = None
    if "data" in raw:
        encoded = raw["data"]
        if not isinstance(encoded, str):
            raise _invalid(f"{where}: data must be base64 text")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _invalid(f"{where}: data is not valid base64") from exc
        parsed = Digest.parse(digest)
        if len(data) != size or str(Digest.of(data, parsed.algorithm)) != digest:
            raise _invalid(f"{where}: embedded data does not match digest and size")
    urls = raw.get("urls") or ()
    if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
        raise _invalid(f"{where}: urls must be a list of strings")
    artifact_type = raw.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid(f"{where}: artifactType must be a string")
    annotations = _annotations(raw.get("annotations"), where)
    platform = raw.get("platform")
    if platform is not None and not isinstance(platform, dict):
        raise _invalid(f"{where}: platform must be an object")
    return Descriptor(
        media_type, digest, size, data, tuple(urls), artifact_type, platform, annotations or None
    )


def _annotations(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise _invalid(f"{where}: annotations must map strings to strings")
    return raw


def _descriptor_list(doc: dict[str, Any], key: str, *, required: bool) -> tuple[Descriptor, ...]:
    raw = doc.get(key)
    if raw is None:
        if required:
            raise _invalid(f"{key} missing")
        return ()
    if not isinstance(raw, list):
        raise _invalid(f"{key} must be a list")
    return tuple(_parse_descriptor(item, f"{key}[{i}]") for i, item in enumerate(raw))


def _guess_media_type(doc: dict[str, Any]) -> str | None:
    declared = doc.get("mediaType")
    if isinstance(declared, str):
        return declared
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc or "layers" in doc:
        return mt.OCI_MANIFEST
    return None


def may_be_manifest(head: bytes) -> bool:
    """Whether bytes starting with `head` could parse as a manifest, told without parsing:
    JSON text opens with `{` after any whitespace, in whichever encoding the parser detects.
    Compressed layers and other binary content say no from their first bytes."""
    text = head[:256].decode(json.detect_encoding(head), errors="ignore")
    return text.lstrip(" \t\r\n")[:1] in ("{", "")


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Check a manifest body against its declared media type and return what it references."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise RegistryError(ErrorCode.MANIFEST_TOO_LARGE)
    try:
        doc = jsontext.loads(body)
    except jsontext.TooDeep as exc:
        raise _invalid(str(exc)) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise _invalid("manifest is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise _invalid("manifest must be a JSON object")

    header_type = (content_type or "").split(";")[0].strip().lower() or None
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise _invalid("mediaType must be a string")
    if header_type in (None, "application/json", "application/octet-stream"):
        media_type = _guess_media_type(doc)
    else:
        media_type = header_type
        if body_type is not None and body_type != header_type:
            raise _invalid(f"mediaType {body_type!r} does not match Content-Type {header_type!r}")
    if media_type in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED):
        raise _invalid("Docker schema 1 manifests are not supported; push schema 2 or OCI")
    if media_type not in mt.MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type!r}")
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    if media_type in (mt.DOCKER_MANIFEST_LIST, mt.DOCKER_MANIFEST) and body_type is None:
        raise _invalid("Docker schema 2 manifests must declare their mediaType")

    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    subject = _parse_descriptor(doc["subject"], "subject") if doc.get("subject") else None
    annotations = _annotations(doc.get("annotations"), "manifest")

    if media_type in mt.INDEXES:
        children = _descriptor_list(doc, "manifests", required=True)
        if "layers" in doc or "config" in doc:
            raise _invalid("an index has no config or layers")
        return ParsedManifest(media_type, (), children, subject, artifact_type, None, annotations)

    if "manifests" in doc:
        raise _invalid("an image manifest has no manifests list")
    config = _parse_descriptor(doc.get("config"), "config")
    layers = _descriptor_list(doc, "layers", required=media_type == mt.DOCKER_MANIFEST)
    blobs = (config, *layers)
    return ParsedManifest(
        media_type, blobs, (), subject, artifact_type, config.media_type, annotations
    )
