"""What the repository and image pages show, as plain values: no SQL, no HTTP, no HTML.

A repository page lists one page of tags (50 by default) with each tag's digest, its
compressed size (the config and layers as stored, the bytes a pull downloads) and, for an
index, each platform with its own size. Only the manifests of the page shown are read, and
an index's children in one query, so a repository with thousands of tags costs what one page
does. An image page (a tag or a digest) adds the layers, the config's run settings and
history, annotations and the referrers (signatures, SBOMs, attestations).

Manifests were checked when pushed, but a config is any JSON its pusher wrote: every field is
read defensively, and what is not the expected shape is shown as absent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from dockyard.core import jsontext
from dockyard.core import mediatypes as mt
from dockyard.core.digest import Digest
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import is_valid_tag
from dockyard.metadata.base import ManifestRecord, MetadataStore
from dockyard.service.accounts import AccountService
from dockyard.service.manifests import ManifestService
from dockyard.storage.base import BlobStore

TAGS_PER_PAGE = 50
MAX_FILTER = 128
# A config is read whole to be shown: beyond this it is only offered raw.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
# Manifests an index's page reads for its platforms; an index naming more shows the rest bare.
MAX_PLATFORMS = 64


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str
    digest: str
    media_type: str
    size: int | None  # config and layers; None when the child is not held here

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class TagRow:
    tag: str
    digest: str
    media_type: str
    artifact_type: str | None
    pushed_at: float
    size: int | None  # an image's config and layers; an index's: None (see platforms)
    platforms: list[Platform]

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES


@dataclass(frozen=True, slots=True)
class TagList:
    repository: str
    contains: str
    page: int  # from 1
    pages: int
    per_page: int
    total: int
    tags: list[TagRow]
    last_pushed: float | None


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    created: str
    created_by: str
    comment: str
    empty_layer: bool


@dataclass(frozen=True, slots=True)
class ImageConfig:
    digest: str
    media_type: str
    size: int
    created: str = ""
    os: str = ""
    architecture: str = ""
    variant: str = ""
    author: str = ""
    user: str = ""
    working_dir: str = ""
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = field(default_factory=list)
    exposed_ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    history: list[HistoryEntry] = field(default_factory=list)
    readable: bool = True  # False: too large or not JSON; offered raw only


@dataclass(frozen=True, slots=True)
class Referrer:
    digest: str
    media_type: str
    artifact_type: str | None
    size: int
    annotations: dict[str, str]
    created_at: float


@dataclass(frozen=True, slots=True)
class ImageView:
    repository: str
    reference: str  # as asked: a tag or a digest
    digest: str
    media_type: str
    artifact_type: str | None
    manifest_size: int
    size: int | None  # config and layers (an image) ; None for an index
    tags: list[str]
    annotations: dict[str, str]
    subject: str | None
    platforms: list[Platform]  # an index's
    layers: list[Layer]  # an image's
    config: ImageConfig | None  # an image's
    referrers: list[Referrer]

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES


# What the referrers API reports for an image without an artifactType: its config's type,
# which says nothing about an ordinary image.
_IMAGE_CONFIGS = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})


def _artifact_type(record: ManifestRecord) -> str | None:
    return None if record.artifact_type in _IMAGE_CONFIGS else record.artifact_type


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: Any) -> list[str] | None:
    if not isinstance(value, list):
        return None
    return [v for v in value if isinstance(v, str)]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _document(body: bytes) -> dict[str, Any]:
    try:
        return _dict(jsontext.loads(body))
    except (ValueError, UnicodeDecodeError):
        return {}


def _stored_size(doc: dict[str, Any]) -> int:
    """The config and layers an image manifest names: what a pull of it downloads."""
    blobs = [_dict(doc.get("config")), *(_dict(layer) for layer in doc.get("layers") or [])]
    return sum(_int(b.get("size")) for b in blobs if not b.get("urls"))


def _layers(doc: dict[str, Any]) -> list[Layer]:
    layers = doc.get("layers")
    return [
        Layer(_text(d.get("digest")), _text(d.get("mediaType")), _int(d.get("size")))
        for d in (_dict(x) for x in (layers if isinstance(layers, list) else []))
    ]


def _is_attestation(child: dict[str, Any]) -> bool:
    """BuildKit's attestation manifests sit in an index as platform unknown/unknown."""
    platform = _dict(child.get("platform"))
    return platform.get("os") == "unknown" and platform.get("architecture") == "unknown"


def _config_of(descriptor: dict[str, Any], body: bytes | None) -> ImageConfig:
    digest, media_type = _text(descriptor.get("digest")), _text(descriptor.get("mediaType"))
    size = _int(descriptor.get("size"))
    doc = _document(body) if body is not None else {}
    if not doc:
        return ImageConfig(digest, media_type, size, readable=False)
    run = _dict(doc.get("config"))
    history = doc.get("history")
    return ImageConfig(
        digest,
        media_type,
        size,
        created=_text(doc.get("created")),
        os=_text(doc.get("os")),
        architecture=_text(doc.get("architecture")),
        variant=_text(doc.get("variant")),
        author=_text(doc.get("author")),
        user=_text(run.get("User")),
        working_dir=_text(run.get("WorkingDir")),
        entrypoint=_strings(run.get("Entrypoint")),
        cmd=_strings(run.get("Cmd")),
        env=_strings(run.get("Env")) or [],
        exposed_ports=sorted(_dict(run.get("ExposedPorts"))),
        volumes=sorted(_dict(run.get("Volumes"))),
        labels={k: v for k, v in _dict(run.get("Labels")).items() if isinstance(v, str)},
        stop_signal=_text(run.get("StopSignal")),
        history=[
            HistoryEntry(
                _text(h.get("created")),
                _text(h.get("created_by")),
                _text(h.get("comment")),
                h.get("empty_layer") is True,
            )
            for h in (history if isinstance(history, list) else [])
            if isinstance(h, dict)
        ],
    )


class ImageViews:
    """The view models of the repository and image pages, over the stores and services."""

    def __init__(
        self,
        meta: MetadataStore,
        blob_store: BlobStore,
        manifests: ManifestService,
        accounts: AccountService,
    ) -> None:
        self.meta = meta
        self.blob_store = blob_store
        self.manifests = manifests
        self.accounts = accounts

    async def visibility(self, repository: str) -> str | None:
        """ "public" or "private"; None for a repository that does not exist."""
        return await self.accounts.visibility(repository)

    async def tags(
        self, repository: str, contains: str = "", page: int = 1, per_page: int = TAGS_PER_PAGE
    ) -> TagList:
        """One page of the repository's tags, most recently pushed first. NOT_FOUND for a
        repository without content; a page past the last is the last."""
        contains = contains.strip()[:MAX_FILTER]
        per_page = max(1, min(per_page, 200))
        page = max(1, page)
        found = None
        if await self.meta.has_content(repository):
            found = await self.meta.tag_page(repository, contains, (page - 1) * per_page, per_page)
        if found is None:
            raise RegistryError(
                ErrorCode.NOT_FOUND, "no such repository", detail={"name": repository}
            )
        pages = max(1, math.ceil(found.total / per_page))
        if page > pages:
            page = pages
            found = await self.meta.tag_page(repository, contains, (page - 1) * per_page, per_page)
            assert found is not None
        rows = await self._rows(repository, found.tags)
        return TagList(
            repository, contains, page, pages, per_page, found.total, rows, found.last_pushed
        )

    async def _rows(self, repository: str, tags: list[Any]) -> list[TagRow]:
        docs = {t.manifest.digest: await self._manifest_doc(t.manifest) for t in tags}
        children: dict[str, list[dict[str, Any]]] = {}
        for t in tags:
            if t.manifest.media_type in mt.INDEXES:
                listed = docs[t.manifest.digest].get("manifests")
                children[t.manifest.digest] = [
                    c
                    for c in (_dict(x) for x in (listed if isinstance(listed, list) else []))
                    if not _is_attestation(c)
                ][:MAX_PLATFORMS]
        wanted = sorted({_text(c.get("digest")) for cs in children.values() for c in cs})
        platforms = await self._platforms(repository, wanted)
        rows = []
        for t in tags:
            record = t.manifest
            is_index = record.media_type in mt.INDEXES
            rows.append(
                TagRow(
                    t.tag,
                    record.digest,
                    record.media_type,
                    _artifact_type(record),
                    t.pushed_at,
                    None if is_index else _stored_size(docs[record.digest]),
                    [_platform(c, platforms) for c in children.get(record.digest, [])],
                )
            )
        return rows

    async def _platforms(self, repository: str, digests: list[str]) -> dict[str, int]:
        """Each held child's stored size, by digest."""
        records = await self.meta.manifests_by_digest(repository, digests)
        return {
            digest: _stored_size(await self._manifest_doc(record))
            for digest, record in records.items()
        }

    async def _manifest_doc(self, record: ManifestRecord) -> dict[str, Any]:
        try:
            return _document(await self.manifests.content(record))
        except RegistryError:  # bytes gone (a corrupt blob set aside): shown without detail
            return {}

    async def _record(self, repository: str, reference: str) -> ManifestRecord:
        if ":" in reference:
            try:
                digest = str(Digest.parse(reference))
            except RegistryError:
                digest = ""
            record = await self.meta.get_manifest(repository, digest) if digest else None
        else:
            valid = is_valid_tag(reference)
            record = await self.meta.resolve_tag(repository, reference) if valid else None
        if record is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": reference[:200]})
        return record

    async def image(self, repository: str, reference: str) -> ImageView:
        """A tag's or digest's manifest, explained. MANIFEST_UNKNOWN when not held here."""
        record = await self._record(repository, reference)
        doc = await self._manifest_doc(record)
        is_index = record.media_type in mt.INDEXES
        platforms: list[Platform] = []
        layers: list[Layer] = []
        config = None
        if is_index:
            listed = doc.get("manifests")
            kids = [_dict(x) for x in (listed if isinstance(listed, list) else [])]
            sizes = await self._platforms(
                repository, [_text(c.get("digest")) for c in kids[:MAX_PLATFORMS]]
            )
            platforms = [_platform(c, sizes) for c in kids]
        else:
            layers = _layers(doc)
            descriptor = _dict(doc.get("config"))
            config = _config_of(descriptor, await self._config_bytes(repository, descriptor))
        referrers = [
            Referrer(r.digest, r.media_type, r.artifact_type, r.size, r.annotations, r.created_at)
            for r in await self.meta.referrers(repository, record.digest)
        ]
        return ImageView(
            repository=repository,
            reference=reference,
            digest=record.digest,
            media_type=record.media_type,
            artifact_type=_artifact_type(record),
            manifest_size=record.size,
            size=None if is_index else _stored_size(doc),
            tags=await self.meta.tags_of(repository, record.digest),
            annotations=record.annotations,
            subject=record.subject,
            platforms=platforms,
            layers=layers,
            config=config,
            referrers=sorted(referrers, key=lambda r: (r.created_at, r.digest)),
        )

    async def _config_bytes(self, repository: str, descriptor: dict[str, Any]) -> bytes | None:
        """The config blob, if the repository links it and it is small enough to show."""
        digest = _text(descriptor.get("digest"))
        if not digest:
            return None
        size = await self.meta.linked_blob_size(repository, digest)
        if size is None or size > MAX_CONFIG_BYTES:
            return None
        return await self.blob_store.get(digest)

    async def raw_manifest(self, repository: str, reference: str) -> tuple[str, bytes]:
        """(media type, bytes) of the manifest, exactly as pushed."""
        record = await self._record(repository, reference)
        return record.media_type, await self.manifests.content(record)

    async def raw_config(self, repository: str, reference: str) -> tuple[str, bytes]:
        """(media type, bytes) of an image manifest's config blob, exactly as pushed."""
        record = await self._record(repository, reference)
        doc = await self._manifest_doc(record)
        descriptor = _dict(doc.get("config"))
        digest = _text(descriptor.get("digest"))
        size = await self.meta.linked_blob_size(repository, digest) if digest else None
        readable = size is not None and size <= MAX_CONFIG_BYTES
        body = await self.blob_store.get(digest) if readable else None
        if record.media_type in mt.INDEXES or body is None:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"reference": reference[:200]})
        return _text(descriptor.get("mediaType")) or "application/json", body


def _platform(child: dict[str, Any], sizes: dict[str, int]) -> Platform:
    platform = _dict(child.get("platform"))
    digest = _text(child.get("digest"))
    return Platform(
        _text(platform.get("os")),
        _text(platform.get("architecture")),
        _text(platform.get("variant")),
        digest,
        _text(child.get("mediaType")),
        sizes.get(digest),
    )
