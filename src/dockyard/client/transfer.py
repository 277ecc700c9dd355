"""Copying an image from any source to any destination: push, pull and copy are all this.

Blobs go first, in parallel (bounded), each skipped when the destination has it, mounted when
the destination can link it from the source's repository, and streamed otherwise. Child
manifests follow, the top manifest last, so a reader of the destination never meets a manifest
whose content is missing. Every blob is checked against its digest by the destination.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Protocol

from dockyard.client.errors import ClientError
from dockyard.client.image import ImageDestination, ImageSource, Manifest, Platform
from dockyard.core.digest import sha256_of
from dockyard.core.manifest import Descriptor, parse_manifest


class Reporter(Protocol):
    """Receives what happens to each blob and manifest (progress bars, JSON lines, nothing)."""

    def blob_started(self, descriptor: Descriptor) -> None: ...

    def blob_progress(self, descriptor: Descriptor, advanced: int) -> None: ...

    def blob_finished(self, descriptor: Descriptor, outcome: str) -> None:
        """`outcome`: "pushed", "exists" or "mounted from <repository>"."""

    def manifest_written(self, manifest: Manifest, tag: str | None) -> None: ...


class SilentReporter:
    def blob_started(self, descriptor: Descriptor) -> None:
        pass

    def blob_progress(self, descriptor: Descriptor, advanced: int) -> None:
        pass

    def blob_finished(self, descriptor: Descriptor, outcome: str) -> None:
        pass

    def manifest_written(self, manifest: Manifest, tag: str | None) -> None:
        pass


@dataclass
class CopyOptions:
    """What to copy from an index: every platform, the named ones, or (default) the host's."""

    all_platforms: bool = False
    platform: Platform | None = None
    jobs: int = 4


@dataclass
class CopyResult:
    manifest: Manifest
    blobs_transferred: int = 0
    bytes_transferred: int = 0
    blobs_skipped: int = 0
    blobs_mounted: int = 0
    platforms: list[str] = field(default_factory=list)


def referenced_blobs(manifest: Manifest) -> list[Descriptor]:
    """Config and layers an image manifest needs (foreign layers live elsewhere)."""
    parsed = parse_manifest(manifest.body, manifest.media_type)
    return [d for d in parsed.blobs if not d.is_foreign]


def child_descriptors(manifest: Manifest) -> list[dict]:
    entries = manifest.json().get("manifests") or []
    return [e for e in entries if isinstance(e, dict) and "digest" in e]


def select_platform(index: Manifest, wanted: Platform) -> dict:
    """The index entry for `wanted`, or an error naming what the index offers."""
    entries = child_descriptors(index)
    for entry in entries:
        if wanted.matches(entry.get("platform")):
            return entry
    offered = (
        ", ".join(
            str(Platform(p.get("os", "?"), p.get("architecture", "?"), p.get("variant")))
            for p in (e.get("platform") or {} for e in entries)
            if p
        )
        or "none"
    )
    raise ClientError(
        f"the image has no {wanted} variant (it offers: {offered}); "
        "pass --platform OS/ARCH or --all"
    )


class Copier:
    def __init__(
        self,
        source: ImageSource,
        destination: ImageDestination,
        options: CopyOptions | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.source = source
        self.destination = destination
        self.options = options or CopyOptions()
        self.reporter = reporter or SilentReporter()
        self._limit = asyncio.Semaphore(max(1, self.options.jobs))
        self._started: dict[str, asyncio.Task] = {}
        self.result: CopyResult | None = None

    async def copy(self, reference: str | None, tag: str | None) -> CopyResult:
        top = await self.source.get_manifest(reference)
        self.result = CopyResult(top)
        if top.is_index:
            if self.options.all_platforms:
                await self._copy_index(top)
            else:
                wanted = self.options.platform or Platform.host()
                entry = select_platform(top, wanted)
                child = await self.source.get_manifest(entry["digest"])
                self.result.platforms.append(str(wanted))
                await self._copy_image(child)
                top = child
        else:
            await self._copy_image(top)
        await self.destination.put_manifest(top, tag)
        self.reporter.manifest_written(top, tag)
        await self.destination.commit()
        self.result.manifest = top
        return self.result

    async def _copy_index(self, index: Manifest) -> None:
        children = [await self.source.get_manifest(e["digest"]) for e in child_descriptors(index)]
        for entry in child_descriptors(index):
            platform = entry.get("platform") or {}
            if platform:
                assert self.result is not None
                self.result.platforms.append(
                    str(
                        Platform(
                            platform.get("os", "?"),
                            platform.get("architecture", "?"),
                            platform.get("variant"),
                        )
                    )
                )
        await asyncio.gather(*(self._copy_any(child) for child in children))
        for child in children:
            await self.destination.put_manifest(child, None)
            self.reporter.manifest_written(child, None)

    async def _copy_any(self, manifest: Manifest) -> None:
        if manifest.is_index:
            await self._copy_index(manifest)
        else:
            await self._copy_image(manifest)

    async def _copy_image(self, manifest: Manifest) -> None:
        await asyncio.gather(*(self._blob(d) for d in referenced_blobs(manifest)))

    def _blob(self, descriptor: Descriptor) -> asyncio.Task:
        """One transfer per digest, shared by every manifest that needs it."""
        task = self._started.get(descriptor.digest)
        if task is None:
            task = asyncio.ensure_future(self._transfer(descriptor))
            self._started[descriptor.digest] = task
        return task

    async def _transfer(self, descriptor: Descriptor) -> None:
        assert self.result is not None
        async with self._limit:
            self.reporter.blob_started(descriptor)
            if await self.destination.has_blob(descriptor):
                self.result.blobs_skipped += 1
                self.reporter.blob_finished(descriptor, "exists")
                return
            mounted_from = await self.destination.mount_blob(descriptor, self.source)
            if mounted_from is not None:
                self.result.blobs_mounted += 1
                self.reporter.blob_finished(descriptor, f"mounted from {mounted_from}")
                return

            def progress(advanced: int) -> None:
                assert self.result is not None
                self.result.bytes_transferred += advanced
                self.reporter.blob_progress(descriptor, advanced)

            await self.destination.put_blob(
                descriptor, lambda offset: self.source.open_blob(descriptor, offset), progress
            )
            self.result.blobs_transferred += 1
            self.reporter.blob_finished(descriptor, "pushed")


def build_index(
    entries: list[dict], media_type: str, annotations: dict[str, str] | None = None
) -> Manifest:
    """An index over per-platform manifests (what `docker buildx imagetools create` makes)."""
    doc: dict = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    if annotations:
        doc["annotations"] = annotations
    body = json.dumps(doc, indent=2).encode()
    return Manifest(body, media_type, sha256_of(body))
