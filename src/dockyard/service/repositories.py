"""Whole repositories: deleting one at once, and reporting what repositories and namespaces store.

A deletion drops every record of the repository in one transaction, under the content lock's
exclusive side: a push publishes under its shared side, so a manifest whose blobs were checked
as linked is stored before the deletion or checked again after it (and then refused), never
stored over links the deletion just removed. The bytes stay until garbage collection finds
nothing references them; only uploads in flight, which nothing else can reach, are dropped
from the blob store at once.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from dataclasses import dataclass, replace

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.base import (
    AuditEntry,
    MetadataStore,
    NamespaceUsage,
    RegistryTotal,
    RemovedRepository,
    RepositoryUsage,
)
from dockyard.service.audit import AuditService
from dockyard.service.content_lock import ContentLock
from dockyard.storage.base import BlobStore
from dockyard.storage.filesystem import FilesystemBlobStore

log = logging.getLogger("dockyard")


@dataclass(frozen=True, slots=True)
class StorageSize:
    """What holds the bytes: a filesystem (its used and total bytes) or a bucket (the total
    of the blob records, since listing a bucket is not cheap)."""

    kind: str  # "filesystem" or "bucket"
    used_bytes: int
    total_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class UsageReport:
    namespaces: list[NamespaceUsage]
    repositories: list[RepositoryUsage]
    # Registry-wide figures: None in a report limited to some namespaces.
    total: RegistryTotal | None = None
    storage: StorageSize | None = None


class RepositoryService:
    def __init__(self, blob_store: BlobStore, meta: MetadataStore, lock: ContentLock) -> None:
        self.blob_store = blob_store
        self.meta = meta
        self.lock = lock
        self.audit = AuditService(meta)

    async def delete(self, repository: str) -> RemovedRepository:
        """Delete a repository's tags, manifests, blob links, uploads and settings."""
        async with self.lock.sweeping():
            base = self.audit.entry("repository.delete", repository, repository=repository)

            def record(removed: RemovedRepository | None) -> AuditEntry | None:
                if removed is None:
                    return None
                return replace(base, detail={"tags": removed.tags, "manifests": removed.manifests})

            removed = await self.meta.delete_repository(repository, audit=record)
            if removed is None:
                raise RegistryError(
                    ErrorCode.NOT_FOUND, "no such repository", detail={"name": repository}
                )
            # Inside the lock: an upload finishing meanwhile publishes under its shared side,
            # so it commits before its bytes go (then links into the emptied repository) or
            # finds them gone and is refused.
            for upload_id in removed.uploads:
                try:
                    await self.blob_store.abort_upload(upload_id)
                except Exception:
                    # Left for the collector: the record is gone, so nothing serves them.
                    log.exception("dropping upload %s of %s failed", upload_id, repository)
        log.info(
            "deleted repository %s: %d tags, %d manifests, %d blob links, %d uploads",
            repository,
            removed.tags,
            removed.manifests,
            removed.blob_links,
            len(removed.uploads),
        )
        return removed

    async def usage(self, namespaces: list[str] | None) -> UsageReport:
        """Usage of `namespaces`, or of the whole registry (with its total and storage size)
        when None."""
        if namespaces is None:
            total = await self.meta.registry_total()
            return UsageReport(
                await self.meta.namespace_usage(None),
                await self.meta.repository_usage(None),
                total,
                self._storage_size(total),
            )
        found: list[NamespaceUsage] = []
        repositories: list[RepositoryUsage] = []
        for namespace in sorted(set(namespaces)):
            found += await self.meta.namespace_usage(namespace)
            repositories += await self.meta.repository_usage(namespace)
        return UsageReport(found, repositories)

    def _storage_size(self, total: RegistryTotal) -> StorageSize:
        if isinstance(self.blob_store, FilesystemBlobStore):
            with contextlib.suppress(OSError):
                disk = shutil.disk_usage(self.blob_store.blob_root)
                return StorageSize("filesystem", disk.used, disk.total)
        return StorageSize("bucket", total.bytes)
