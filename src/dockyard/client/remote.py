"""A repository in a registry as an ImageSource / ImageDestination (see `image.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dockyard.client.image import BlobOpener, ImageSource, Manifest, ProgressCallback
from dockyard.client.registry import RegistryClient
from dockyard.core.manifest import Descriptor
from dockyard.core.reference import ImageReference


class _InRegistry:
    """A repository reached through `client` (which must talk to `ref`'s registry)."""

    def __init__(self, client: RegistryClient, ref: ImageReference) -> None:
        self.client = client
        self.ref = ref

    @property
    def repository(self) -> str:
        return self.ref.repository

    def describe(self) -> str:
        return f"docker://{self.ref}"


class RegistrySource(_InRegistry):
    """Reads `ref`."""

    async def get_manifest(self, reference: str | None = None) -> Manifest:
        return await self.client.get_manifest(self.ref.repository, reference or self.ref.reference)

    def open_blob(self, descriptor: Descriptor, offset: int = 0) -> AsyncIterator[bytes]:
        return self.client.open_blob(self.ref.repository, descriptor.digest, offset)

    async def close(self) -> None:
        """The client is shared and closed by whoever made it."""


class RegistryDestination(_InRegistry):
    """Writes into `ref`'s repository."""

    async def has_blob(self, descriptor: Descriptor) -> bool:
        return await self.client.blob_size(self.ref.repository, descriptor.digest) is not None

    async def mount_blob(self, descriptor: Descriptor, source: ImageSource) -> str | None:
        """Cross-repository mount from a RegistrySource on the same registry; otherwise an
        automatic mount (`?mount=` alone), which registries that know the blob honour."""
        if isinstance(source, RegistrySource) and source.client.api_host == self.client.api_host:
            if source.repository == self.ref.repository:
                return None
            if await self.client.mount_blob(
                self.ref.repository, descriptor.digest, source.repository
            ):
                return source.repository
            return None
        if await self.client.mount_blob(self.ref.repository, descriptor.digest):
            return "another repository"
        return None

    async def put_blob(
        self, descriptor: Descriptor, opener: BlobOpener, progress: ProgressCallback | None = None
    ) -> None:
        await self.client.upload_blob(self.ref.repository, descriptor, opener, progress)

    # More tags for the top manifest, pushed with it (`dockyard push/copy --tag`).
    extra_tags: tuple[str, ...] = ()

    async def put_manifest(self, manifest: Manifest, tag: str | None) -> str:
        # Only the top manifest carries the destination's tag; children go by digest.
        if self.extra_tags and tag is not None and tag == self.ref.tag:
            tags = list(dict.fromkeys([tag, *self.extra_tags]))
            return await self.client.put_manifest_tags(self.ref.repository, manifest, tags)
        return await self.client.put_manifest(self.ref.repository, tag or manifest.digest, manifest)

    async def commit(self) -> None:
        """Nothing to do: the top manifest, pushed last, is what makes the image visible."""

    async def close(self) -> None:
        """The client is shared and closed by whoever made it."""
