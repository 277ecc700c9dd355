"""Reading, mounting and deleting blobs in a repository."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from dockyard.core.digest import Digest
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.base import MetadataStore, QuotaExceeded
from dockyard.service.content_lock import ContentLock, NoLock
from dockyard.service.quotas import refusal as quota_refusal
from dockyard.storage.base import BlobStore

# Whether the caller may read a repository; None means everything is readable (no accounts).
ReadCheck = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class BlobInfo:
    digest: str
    size: int
    manifest: bool = False  # a manifest's bytes, read through the blobs endpoint


class BlobService:
    def __init__(
        self, blobs: BlobStore, meta: MetadataStore, lock: ContentLock | None = None
    ) -> None:
        self.lock = lock or NoLock()
        self.blobs = blobs
        self.meta = meta

    async def stat(self, repository: str, digest: str) -> BlobInfo:
        """A blob visible in `repository`: linked there and present in the store."""
        digest = Digest.checked(digest)
        size = await self.meta.linked_blob_size(repository, digest)
        if size is None:
            # Manifests are content too: some clients fetch them through the blobs endpoint.
            manifest = await self.meta.get_manifest(repository, digest)
            if manifest is None:
                raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": digest})
            return BlobInfo(digest, manifest.size, manifest=True)
        return BlobInfo(digest, size)

    async def redirect_url(self, digest: str) -> str | None:
        return await self.blobs.url_for(digest)

    def read(self, digest: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self.blobs.read(digest, start, end)

    async def delete(self, repository: str, digest: str) -> None:
        """Unlink from the repository; bytes go when garbage collection finds them unused."""
        digest = str(Digest.parse(digest))
        if not await self.meta.unlink_blob(repository, digest):
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": digest})

    async def mount(
        self, repository: str, digest: str, source: str | None, may_read: ReadCheck | None = None
    ) -> bool:
        """Link an existing blob into `repository` without moving bytes.

        With a source repository, the blob must be linked there. Without one (automatic mount)
        any repository holding it qualifies. With `may_read`, only repositories the caller may
        read count, so a digest never opens a door to someone else's private content.
        Returns False when nothing could be mounted.
        """
        async with self.lock.publishing():
            size = await readable_blob_size(self.meta, digest, source, may_read)
            if size is None or await self.blobs.stat(digest) is None:
                return False
            try:
                await self.meta.link_blob(repository, digest, size)
            except QuotaExceeded as exc:
                raise quota_refusal(exc) from None
        return True


async def readable_blob_size(
    meta: MetadataStore, digest: str, source: str | None, may_read: ReadCheck | None
) -> int | None:
    """The size of a blob held by `source` (or by any repository) that the caller may read."""
    candidates = [source] if source is not None else None
    if may_read is None:
        if source is not None:
            return await meta.linked_blob_size(source, digest)
        return await meta.blob_size(digest)
    if candidates is None:
        candidates = await meta.repositories_linking(digest, limit=20)
    for candidate in candidates:
        # Readable first: what a repository the caller may not read holds must not even
        # cost a lookup (the time it takes would tell).
        if not await may_read(candidate):
            continue
        size = await meta.linked_blob_size(candidate, digest)
        if size is not None:
            return size
    return None
