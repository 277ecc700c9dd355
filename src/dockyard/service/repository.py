"""One repository as the route handlers see it: its manifests, blobs, tags and uploads.

`Registry.repository(name)` hands one out. Whether it is an ordinary local repository or one
the pull-through cache stands in for (`dockyard.proxy` wraps the local one) is that call's
business, never a handler's. The local repository is a thin view: each call names the
repository to the service that does the work.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from dockyard.core.digest import Digest
from dockyard.core.names import validate_name

if TYPE_CHECKING:
    from dockyard.metadata.base import ManifestRecord
    from dockyard.service.blobs import BlobInfo, BlobService, ReadCheck
    from dockyard.service.listing import ListingService, Page
    from dockyard.service.manifests import ManifestService, PutResult, Referrers
    from dockyard.service.metrics import Metrics
    from dockyard.service.uploads import UploadService, UploadStatus

# Whether the caller may not see the local repository of this name (a mirror then answers it).
Hidden = Callable[[], Awaitable[bool]]
Span = tuple[int, int] | None


@dataclass(frozen=True, slots=True)
class Arriving:
    """A blob not held here yet, coming in from elsewhere as it is read. `stream` is None when
    only its size was asked for (HEAD). `is_manifest` tells, once every byte has arrived,
    whether the bytes were kept as a manifest (reading one is a pull)."""

    digest: str
    size: int
    stream: AsyncGenerator[bytes, None] | None
    is_manifest: Callable[[], Awaitable[bool]]


class Manifests(Protocol):
    async def get(self, reference: str) -> tuple[ManifestRecord, str | None]:
        """The manifest, and the Warning header to add when it is served stale."""

    async def content(self, record: ManifestRecord) -> bytes: ...

    async def put(
        self,
        reference: str,
        body: Callable[[], Awaitable[bytes]],
        content_type: str | None,
        tags: list[str],
        may_read: ReadCheck | None,
    ) -> PutResult:
        """Store a manifest; `body` is read only once the repository takes writes."""

    async def delete(self, reference: str, *, force: bool = False) -> None: ...

    async def referrers(self, subject: str, artifact_type: str | None) -> Referrers: ...

    async def parents(self, digest: str) -> list[ManifestRecord]:
        """The indexes of this repository listing the manifest, newest first."""


class Blobs(Protocol):
    async def find(self, digest: str, *, head: bool = False) -> BlobInfo | Arriving:
        """A blob held here, or one on its way (`head`: its size only, nothing downloaded)."""

    def read(self, digest: str, start: int, end: int) -> AsyncIterator[bytes]: ...

    async def redirect_url(self, digest: str) -> str | None: ...

    async def delete(self, digest: str) -> None: ...

    async def mount(
        self, digest: str, source: str | None, may_read: ReadCheck | None
    ) -> str | None:
        """Link a blob held elsewhere here; its parsed digest, or None when nothing could be."""


class Tags(Protocol):
    async def list(self, n: int | None, last: str | None) -> Page: ...


class Uploads(Protocol):
    async def start(self, algorithm: str = "sha256") -> UploadStatus: ...

    async def monolithic(self, digest: str, chunks: AsyncIterator[bytes]) -> str: ...

    async def status(self, upload_id: str) -> UploadStatus: ...

    async def append(
        self, upload_id: str, chunks: AsyncIterator[bytes], span: Span
    ) -> UploadStatus: ...

    async def finish(
        self, upload_id: str, digest: str | None, chunks: AsyncIterator[bytes] | None, span: Span
    ) -> str: ...

    async def cancel(self, upload_id: str) -> None: ...


class Repository(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def manifests(self) -> Manifests: ...

    @property
    def blobs(self) -> Blobs: ...

    @property
    def tags(self) -> Tags: ...

    @property
    def uploads(self) -> Uploads: ...

    @property
    def replayable(self) -> bool:
        """True when what a pull is answered follows from the metadata store alone, so an
        answer may be given again while the store has not changed (`Registry.version`); a
        cached repository's follows from its upstream too."""

    async def signed_as(self) -> str:
        """The repository path a cosign signature of its images names: its own name, or for a
        cached repository its name upstream, where the image was signed."""


class StandIn(Protocol):
    """What the registry asks of whatever stands in for some repositories: the pull-through
    cache (`dockyard.proxy`), which the application's assembly hands it when configured."""

    def repository(self, local: LocalRepository, hidden: Hidden | None = None) -> Repository:
        """`local`, or a repository wrapping it when the stand-in answers its name."""

    def start(self) -> None: ...

    def observe(self, metrics: Metrics) -> None:
        """Count its hits, misses and upstream failures in `metrics`."""

    async def close(self) -> None: ...


class LocalManifests:
    __slots__ = ("name", "service")

    def __init__(self, name: str, service: ManifestService) -> None:
        self.name, self.service = name, service

    async def get(self, reference: str) -> tuple[ManifestRecord, str | None]:
        return await self.service.resolve(self.name, reference), None

    async def content(self, record: ManifestRecord) -> bytes:
        return await self.service.content(record)

    async def put(
        self,
        reference: str,
        body: Callable[[], Awaitable[bytes]],
        content_type: str | None,
        tags: list[str],
        may_read: ReadCheck | None,
    ) -> PutResult:
        return await self.service.put(
            self.name, reference, await body(), content_type, tags, may_read
        )

    async def delete(self, reference: str, *, force: bool = False) -> None:
        await self.service.delete(self.name, reference, force=force)

    async def referrers(self, subject: str, artifact_type: str | None) -> Referrers:
        return await self.service.referrers(self.name, subject, artifact_type)

    async def parents(self, digest: str) -> list[ManifestRecord]:
        return await self.service.meta.indexes_listing(self.name, digest)


class LocalBlobs:
    __slots__ = ("name", "service")

    def __init__(self, name: str, service: BlobService) -> None:
        self.name, self.service = name, service

    async def find(self, digest: str, *, head: bool = False) -> BlobInfo | Arriving:
        return await self.service.stat(self.name, digest)

    def read(self, digest: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self.service.read(digest, start, end)

    async def redirect_url(self, digest: str) -> str | None:
        return await self.service.redirect_url(digest)

    async def delete(self, digest: str) -> None:
        await self.service.delete(self.name, digest)

    async def mount(
        self, digest: str, source: str | None, may_read: ReadCheck | None
    ) -> str | None:
        digest = str(Digest.parse(digest))
        if source is not None:
            validate_name(source)
        return digest if await self.service.mount(self.name, digest, source, may_read) else None


class LocalTags:
    __slots__ = ("name", "service")

    def __init__(self, name: str, service: ListingService) -> None:
        self.name, self.service = name, service

    async def list(self, n: int | None, last: str | None) -> Page:
        return await self.service.tags(self.name, n, last)


class LocalUploads:
    __slots__ = ("name", "service")

    def __init__(self, name: str, service: UploadService) -> None:
        self.name, self.service = name, service

    async def start(self, algorithm: str = "sha256") -> UploadStatus:
        return await self.service.start(self.name, algorithm)

    async def monolithic(self, digest: str, chunks: AsyncIterator[bytes]) -> str:
        return await self.service.monolithic(self.name, digest, chunks)

    async def status(self, upload_id: str) -> UploadStatus:
        return await self.service.status(self.name, upload_id)

    async def append(
        self, upload_id: str, chunks: AsyncIterator[bytes], span: Span
    ) -> UploadStatus:
        return await self.service.append(self.name, upload_id, chunks, span)

    async def finish(
        self, upload_id: str, digest: str | None, chunks: AsyncIterator[bytes] | None, span: Span
    ) -> str:
        return await self.service.finish(self.name, upload_id, digest, chunks, span)

    async def cancel(self, upload_id: str) -> None:
        await self.service.cancel(self.name, upload_id)


class LocalRepository:
    """An ordinary repository of this registry. Its views are made when asked for: a request
    uses one or two of them."""

    __slots__ = ("_blobs", "_listing", "_manifests", "_uploads", "name")
    replayable = True

    def __init__(
        self,
        name: str,
        manifests: ManifestService,
        blobs: BlobService,
        listing: ListingService,
        uploads: UploadService,
    ) -> None:
        self.name = name
        self._manifests, self._blobs, self._listing, self._uploads = (
            manifests,
            blobs,
            listing,
            uploads,
        )

    @property
    def manifests(self) -> Manifests:
        return LocalManifests(self.name, self._manifests)

    @property
    def blobs(self) -> Blobs:
        return LocalBlobs(self.name, self._blobs)

    @property
    def tags(self) -> Tags:
        return LocalTags(self.name, self._listing)

    @property
    def uploads(self) -> Uploads:
        return LocalUploads(self.name, self._uploads)

    async def signed_as(self) -> str:
        return self.name
