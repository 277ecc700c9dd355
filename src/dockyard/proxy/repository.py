"""A repository the pull-through cache stands in for, wrapping the local one.

Reads go to the cache (and through it, on a miss, to the upstream) when the name is a cached
repository's; writes are refused there, with the error clients always got. A name only a mirror
answers is still free locally: writes to it create an ordinary repository (which then shadows
the mirror for that name, as a local repository should), and reads of a local repository the
caller may not see are answered by the mirror, as a missing one would be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from dockyard.core.digest import Digest
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.service.repository import (
    Arriving,
    Blobs,
    Hidden,
    LocalRepository,
    Manifests,
    Span,
    Tags,
    Uploads,
)

if TYPE_CHECKING:
    from dockyard.metadata.base import ManifestRecord
    from dockyard.proxy.service import ProxyService
    from dockyard.proxy.upstream import Route
    from dockyard.service.blobs import BlobInfo, ReadCheck
    from dockyard.service.listing import Page
    from dockyard.service.manifests import PutResult, Referrers
    from dockyard.service.uploads import UploadStatus

READ_ONLY_CACHE = "cached repositories are read-only: push to a repository of your own"
_UNRESOLVED: object = object()


class ProxiedRepository:
    """`name` as the cache may serve it: cached (prefixed by an upstream's name), or a name a
    mirror answers unless it is a local repository the caller may see."""

    replayable = False  # what is held, what upstream says, and whether it answers at all

    def __init__(self, local: LocalRepository, proxy: ProxyService, hidden: Hidden | None) -> None:
        self.name = local.name
        self.local = local
        self.proxy = proxy
        self._hidden = hidden
        self._route: object = _UNRESOLVED

    @property
    def manifests(self) -> Manifests:
        return ProxiedManifests(self)

    @property
    def blobs(self) -> Blobs:
        return ProxiedBlobs(self)

    @property
    def tags(self) -> Tags:
        return ProxiedTags(self)

    @property
    def uploads(self) -> Uploads:
        return ProxiedUploads(self)

    async def route(self) -> Route | None:
        """Where reads go: the cached repository, or None for the local one."""
        if self._route is _UNRESOLVED:
            self._route = await self._resolve()
        return self._route  # type: ignore[return-value]

    async def _resolve(self) -> Route | None:
        proxy = self.proxy
        route = await proxy.route(self.name)
        if (
            route is None
            and proxy.mirror is not None
            and self._hidden is not None
            and await self._hidden()
        ):
            return proxy.mirrored(self.name)
        return route

    async def signed_as(self) -> str:
        route = await self.route()
        return route.remote if route is not None else self.name

    def refuse_writes(self) -> None:
        """Writes to a cached repository are refused; to any other name they are local."""
        if self.proxy.prefixed(self.name) is not None:
            raise RegistryError(ErrorCode.UNSUPPORTED, READ_ONLY_CACHE)


class ProxiedManifests:
    __slots__ = ("repo",)

    def __init__(self, repo: ProxiedRepository) -> None:
        self.repo = repo

    async def get(self, reference: str) -> tuple[ManifestRecord, str | None]:
        route = await self.repo.route()
        if route is None:
            return await self.repo.local.manifests.get(reference)
        return await self.repo.proxy.manifest(route, reference)

    async def content(self, record: ManifestRecord) -> bytes:
        return await self.repo.local.manifests.content(record)

    async def put(
        self,
        reference: str,
        body: Callable[[], Awaitable[bytes]],
        content_type: str | None,
        tags: list[str],
        may_read: ReadCheck | None,
    ) -> PutResult:
        self.repo.refuse_writes()
        return await self.repo.local.manifests.put(reference, body, content_type, tags, may_read)

    async def delete(self, reference: str, *, force: bool = False) -> None:
        self.repo.refuse_writes()
        await self.repo.local.manifests.delete(reference, force=force)

    async def referrers(self, subject: str, artifact_type: str | None) -> Referrers:
        # A cached repository lists what was cached from its upstream, never a local namesake's.
        route = await self.repo.route()
        name = route.local if route is not None else self.repo.name
        return await self.repo.proxy.manifests.referrers(name, subject, artifact_type)

    async def parents(self, digest: str) -> list[ManifestRecord]:
        # Indexes the cache holds (those fetched through it), as the referrers above.
        route = await self.repo.route()
        name = route.local if route is not None else self.repo.name
        return await self.repo.proxy.manifests.meta.indexes_listing(name, digest)


class ProxiedBlobs:
    __slots__ = ("repo",)

    def __init__(self, repo: ProxiedRepository) -> None:
        self.repo = repo

    async def find(self, digest: str, *, head: bool = False) -> BlobInfo | Arriving:
        """A blob of a cached repository: held here, or read through from the upstream (whole:
        a range of an uncached blob is served once the blob is here)."""
        route = await self.repo.route()
        if route is None:
            return await self.repo.local.blobs.find(digest, head=head)
        proxy = self.repo.proxy
        digest = str(Digest.parse(digest))
        info = await proxy.cached_content(route, digest)
        proxy.looked_up("blob", info is not None)
        if info is not None:
            return info
        if head:  # the size, asking the upstream without downloading anything
            return Arriving(digest, await proxy.blob_size(route, digest), None, _never_a_manifest)
        size, stream = await proxy.fetch_blob(route, digest)
        return Arriving(digest, size, stream, lambda: proxy.is_manifest(route, digest))

    def read(self, digest: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self.repo.local.blobs.read(digest, start, end)

    async def redirect_url(self, digest: str) -> str | None:
        return await self.repo.local.blobs.redirect_url(digest)

    async def delete(self, digest: str) -> None:
        self.repo.refuse_writes()
        await self.repo.local.blobs.delete(digest)

    async def mount(
        self, digest: str, source: str | None, may_read: ReadCheck | None
    ) -> str | None:
        self.repo.refuse_writes()
        return await self.repo.local.blobs.mount(digest, source, may_read)


async def _never_a_manifest() -> bool:
    return False


class ProxiedTags:
    __slots__ = ("repo",)

    def __init__(self, repo: ProxiedRepository) -> None:
        self.repo = repo

    async def list(self, n: int | None, last: str | None) -> Page:
        route = await self.repo.route()
        if route is None:
            return await self.repo.local.tags.list(n, last)
        return await self.repo.proxy.tags(route, n, last)


class ProxiedUploads:
    """Starting an upload is a write; an upload that exists was started on a name that takes
    writes, so the requests that continue it go to the local repository as they are."""

    __slots__ = ("repo",)

    def __init__(self, repo: ProxiedRepository) -> None:
        self.repo = repo

    async def start(self, algorithm: str = "sha256") -> UploadStatus:
        self.repo.refuse_writes()
        return await self.repo.local.uploads.start(algorithm)

    async def monolithic(self, digest: str, chunks: AsyncIterator[bytes]) -> str:
        self.repo.refuse_writes()
        return await self.repo.local.uploads.monolithic(digest, chunks)

    async def status(self, upload_id: str) -> UploadStatus:
        return await self.repo.local.uploads.status(upload_id)

    async def append(
        self, upload_id: str, chunks: AsyncIterator[bytes], span: Span
    ) -> UploadStatus:
        return await self.repo.local.uploads.append(upload_id, chunks, span)

    async def finish(
        self, upload_id: str, digest: str | None, chunks: AsyncIterator[bytes] | None, span: Span
    ) -> str:
        return await self.repo.local.uploads.finish(upload_id, digest, chunks, span)

    async def cancel(self, upload_id: str) -> None:
        await self.repo.local.uploads.cancel(upload_id)
