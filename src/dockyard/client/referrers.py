"""Artifacts about an image (signatures, SBOMs, attestations): pushing one with a `subject`
(`attach`) and listing what refers to an image, recursively (`discover`).

Registries with the OCI 1.1 referrers API index a subject themselves. On the others (CNCF
Distribution 2.x) the list lives in the referrers tag `<algorithm>-<hex>`, an OCI index that
this module reads and, after pushing a referrer, updates, as oras, regctl and cosign do. That
tag is read-modify-write without a conditional PUT: an update another client overwrote is seen
when read back and redone, but two clients attaching to one image at the same instant can still
leave one artifact out of the tag (pushed, not listed), as with every client of that schema.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.client.errors import ClientError, NotFound
from dockyard.client.image import Manifest
from dockyard.client.registry import RegistryClient
from dockyard.core import mediatypes as mt
from dockyard.core.digest import referrers_tag
from dockyard.core.manifest import Descriptor

EMPTY_CONFIG = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_CONFIG).hexdigest()
TITLE = "org.opencontainers.image.title"
# How deep `discover` follows referrers of referrers, and how many it lists in all: a registry
# cannot make it loop or run without end.
MAX_DEPTH = 8
MAX_REFERRERS = 10_000
# Attempts at updating the referrers tag when other writers keep replacing it.
TAG_ATTEMPTS = 5
# RFC 6838's type/subtype; this also keeps control characters out of what others display.
MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
# What a referrer's digest must look like before it goes into the next request's path.
DIGEST = re.compile(r"sha(256:[a-f0-9]{64}|512:[a-f0-9]{128})")


@dataclass
class Referrer:
    """A manifest whose `subject` is the image (or another referrer), with its own referrers."""

    descriptor: dict[str, Any]
    referrers: list[Referrer] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            key: self.descriptor[key]
            for key in ("mediaType", "digest", "size", "artifactType", "annotations")
            if key in self.descriptor
        }
        document["referrers"] = [child.to_json() for child in self.referrers]
        return document


@dataclass(frozen=True)
class ArtifactFile:
    path: Path
    media_type: str = "application/octet-stream"

    @classmethod
    def parse(cls, text: str) -> ArtifactFile:
        """`FILE` or `FILE:MEDIATYPE` (split at the last colon when a file by the whole name
        does not exist), as oras writes it."""
        path, sep, media_type = text.rpartition(":")
        if sep and path and "/" in media_type and not Path(text).exists():
            return cls(Path(path), media_type)
        return cls(Path(text))


async def list_referrers(
    registry: RegistryClient, repo: str, digest: str, artifact_type: str | None = None
) -> list[dict[str, Any]]:
    """The descriptors of `digest`'s referrers: the API's answer, else the referrers tag's."""
    found = await registry.referrers(repo, digest, artifact_type)
    if found is None:
        found = (await _tag_index(registry, repo, digest))["manifests"]
        if artifact_type:
            found = [entry for entry in found if entry.get("artifactType") == artifact_type]
    return found


async def _tag_index(registry: RegistryClient, repo: str, digest: str) -> dict[str, Any]:
    tag = referrers_tag(digest)
    try:
        # Every type accepted: a registry may hide what it holds under the tag from an index-only
        # Accept (Distribution answers 404), which would read as "no referrers" and overwrite it.
        manifest = await registry.get_manifest(repo, tag)
    except NotFound:
        return {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
    try:
        if manifest.media_type != mt.OCI_INDEX:
            raise ValueError(manifest.media_type)
        document = manifest.json()
        entries = document.get("manifests") or []
    except (ValueError, AttributeError):
        raise ClientError(
            f"{repo}:{tag} is not an OCI index, so it cannot list the referrers of {digest}"
        ) from None
    document["manifests"] = [entry for entry in entries if isinstance(entry, dict)]
    return document


async def discover(
    registry: RegistryClient, repo: str, digest: str, artifact_type: str | None = None
) -> list[Referrer]:
    """The referrers of `digest` (of `artifact_type`, when given) and, under each, its own
    referrers of any type."""
    seen = {digest}

    async def walk(subject: str, wanted: str | None, depth: int) -> list[Referrer]:
        found = []
        for entry in await list_referrers(registry, repo, subject, wanted):
            child = str(entry.get("digest", ""))
            if not DIGEST.fullmatch(child) or child in seen or len(seen) >= MAX_REFERRERS:
                continue
            seen.add(child)
            below = await walk(child, None, depth + 1) if depth < MAX_DEPTH else []
            found.append(Referrer(entry, below))
        return found

    return await walk(digest, artifact_type, 1)


async def _blob(
    registry: RegistryClient, repo: str, descriptor: Descriptor, source: Path | bytes
) -> None:
    async def opener(offset: int) -> AsyncIterator[bytes]:
        if isinstance(source, bytes):
            yield source[offset:]
            return
        with source.open("rb") as handle:
            handle.seek(offset)
            while piece := handle.read(1024 * 1024):
                yield piece

    if await registry.blob_size(repo, descriptor.digest) is None:
        await registry.upload_blob(repo, descriptor, opener)


def _file_descriptor(item: ArtifactFile) -> Descriptor:
    digest, size = hashlib.sha256(), 0
    try:
        with item.path.open("rb") as handle:
            while piece := handle.read(1024 * 1024):
                digest.update(piece)
                size += len(piece)
    except OSError as exc:
        raise ClientError(f"{item.path}: cannot read it ({exc.strerror})") from None
    return Descriptor(item.media_type, "sha256:" + digest.hexdigest(), size)


async def attach(
    registry: RegistryClient,
    repo: str,
    subject: Descriptor,
    artifact_type: str,
    files: Sequence[ArtifactFile],
    annotations: dict[str, str] | None = None,
) -> Manifest:
    """Push an artifact manifest whose layers are `files` and whose subject is `subject`;
    keep the referrers tag up to date when the registry does not index subjects itself."""
    for media_type in (artifact_type, *(item.media_type for item in files)):
        if not MEDIA_TYPE.fullmatch(media_type):
            raise ClientError(f"{media_type!r} is not a media type such as application/spdx+json")
    empty = Descriptor(mt.OCI_EMPTY, EMPTY_DIGEST, len(EMPTY_CONFIG))
    await _blob(registry, repo, empty, EMPTY_CONFIG)
    layers = []
    for item in files:
        descriptor = _file_descriptor(item)
        await _blob(registry, repo, descriptor, item.path)
        layers.append(
            {
                "mediaType": descriptor.media_type,
                "digest": descriptor.digest,
                "size": descriptor.size,
                "annotations": {TITLE: item.path.name},
            }
        )
    if not layers:
        # An artifact of annotations alone still needs one layer: the empty blob.
        layers.append({"mediaType": mt.OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2})
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": mt.OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
        "layers": layers,
        "subject": {
            "mediaType": subject.media_type,
            "digest": subject.digest,
            "size": subject.size,
        },
    }
    if annotations:
        document["annotations"] = dict(annotations)
    body = json.dumps(document, separators=(",", ":")).encode()
    manifest = Manifest(body, mt.OCI_MANIFEST, "sha256:" + hashlib.sha256(body).hexdigest())
    if not await registry.put_referrer(repo, manifest):
        entry = manifest.descriptor(artifactType=artifact_type)
        if annotations:
            entry["annotations"] = dict(annotations)
        await add_to_tag(registry, repo, subject.digest, entry)
    return manifest


async def add_to_tag(
    registry: RegistryClient, repo: str, subject: str, entry: dict[str, Any]
) -> None:
    tag = referrers_tag(subject)
    for _ in range(TAG_ATTEMPTS):
        index = await _tag_index(registry, repo, subject)
        if any(known.get("digest") == entry["digest"] for known in index["manifests"]):
            return
        index["manifests"].append(entry)
        index.setdefault("schemaVersion", 2)
        index["mediaType"] = mt.OCI_INDEX
        body = json.dumps(index, separators=(",", ":")).encode()
        await registry.put_manifest(
            repo, tag, Manifest(body, mt.OCI_INDEX, "sha256:" + hashlib.sha256(body).hexdigest())
        )
    if not any(
        known.get("digest") == entry["digest"]
        for known in (await _tag_index(registry, repo, subject))["manifests"]
    ):
        raise ClientError(
            f"{repo}:{tag}: other clients kept replacing the referrers tag; "
            f"{entry['digest']} was pushed but is not listed in it"
        )
