"""`dockyard fsck`: is everything the registry stores what it claims to be?

Every committed blob is hashed again (streamed) and compared with its digest; every repository
link, manifest reference and tag is followed to content that must exist. With `repair`, blobs
whose bytes do not hash to their digest are moved to the store's quarantine (kept for
inspection) and their records dropped, so the registry answers BLOB_UNKNOWN for them instead
of wrong bytes, and the next push of the real content stores it afresh.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field

from dockyard.core.digest import Digest
from dockyard.metadata.base import MetadataStore
from dockyard.service.content_lock import ContentLock, NoLock
from dockyard.storage.base import BlobStore


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # bad-blob, dangling-link, missing-manifest-content, missing-reference, …
    where: str  # repository (or "-" for the blob store)
    digest: str
    detail: str


@dataclass(slots=True)
class FsckReport:
    blobs_checked: int = 0
    bad_blobs: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    quarantined: dict[str, str] = field(default_factory=dict)  # digest -> where it went

    @property
    def clean(self) -> bool:
        return not self.problems


class FsckService:
    def __init__(
        self,
        blobs: BlobStore,
        meta: MetadataStore,
        lock: ContentLock | None = None,
        cached_prefixes: list[str] | None = None,
    ) -> None:
        self.blobs = blobs
        self.meta = meta
        self.lock = lock or NoLock()
        # A pull-through cache fetches the blobs its manifests name only when asked.
        self.cached = [p.rstrip("/") + "/" for p in cached_prefixes or []]

    async def run(self, *, repair: bool = False) -> FsckReport:
        report = FsckReport()
        present: set[str] = set()
        async for digest in self.blobs.iter_digests():
            report.blobs_checked += 1
            if await self._intact(digest):
                present.add(digest)
            else:
                report.bad_blobs.append(digest)
                report.problems.append(
                    Problem("bad-blob", "-", digest, "content does not hash to its digest")
                )
        if repair and report.bad_blobs:
            await self._quarantine(report)
        await self._follow_edges(report, present)
        return report

    async def _intact(self, digest: str) -> bool:
        hasher = hashlib.new(Digest.parse(digest).algorithm)
        try:
            async for chunk in self.blobs.read(digest):
                await asyncio.to_thread(hasher.update, chunk)
        except FileNotFoundError:
            return True  # removed meanwhile (a sweep): nothing wrong is served
        return hasher.hexdigest() == Digest.parse(digest).hex

    async def _quarantine(self, report: FsckReport) -> None:
        # Commits never replace an existing blob, so bad bytes stay bad until moved; the
        # sweeping lock keeps pushes from linking the digest while its records are dropped.
        async with self.lock.sweeping():
            for digest in report.bad_blobs:
                if await self._intact(digest):
                    continue
                where = await self.blobs.quarantine(digest)
                if where is not None:
                    report.quarantined[digest] = where
            await self.meta.forget_blob_records(list(report.quarantined))

    def _is_cached(self, repository: str) -> bool:
        return any(repository.startswith(prefix) for prefix in self.cached)

    async def _follow_edges(self, report: FsckReport, present: set[str]) -> None:
        graph = await self.meta.content_graph()
        problems = report.problems
        corrupt = set(report.bad_blobs) - set(report.quarantined)

        def absent(digest: str) -> str:
            # A corrupt blob is reported once as bad-blob; what leads to it says which it is.
            return "is corrupt" if digest in corrupt else "is not in the blob store"

        for repository, digest in graph.links:
            if digest not in present:
                problems.append(
                    Problem("dangling-link", repository, digest, f"linked blob {absent(digest)}")
                )
        manifests = set(graph.manifests)
        for repository, digest in graph.manifests:
            if digest not in present:
                problems.append(
                    Problem(
                        "missing-manifest-content",
                        repository,
                        digest,
                        f"manifest content {absent(digest)}",
                    )
                )
        for repository, manifest, target, kind in graph.references:
            if kind == "manifest":
                if (repository, target) not in manifests:
                    problems.append(
                        Problem(
                            "missing-child",
                            repository,
                            target,
                            f"index {manifest} refers to an unknown manifest",
                        )
                    )
            elif target not in present and not self._is_cached(repository):
                problems.append(
                    Problem(
                        "missing-reference",
                        repository,
                        target,
                        f"manifest {manifest} refers to a blob that {absent(target)}",
                    )
                )
        for repository, tag, digest in graph.tags:
            if (repository, digest) not in manifests or digest not in present:
                problems.append(
                    Problem(
                        "dangling-tag",
                        repository,
                        digest,
                        f"tag {tag} points at a missing manifest",
                    )
                )
