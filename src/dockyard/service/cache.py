"""Size of the pull-through cache, and least-recently-used eviction to keep it under a limit.

Only content that nothing else needs can go: a blob also linked by an ordinary repository, or
referenced by any manifest still held, stays. Bytes are moved out of sight before their records
are dropped, so a push of the same content at that moment publishes a fresh copy instead of
losing one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dockyard.metadata.base import CacheUsage, MetadataStore
from dockyard.metadata.counters import Counters
from dockyard.service.content_lock import ContentLock
from dockyard.storage.base import BlobStore

log = logging.getLogger("dockyard.cache")


def touch_key(repository: str, digest: str) -> str:
    return f"cache:{repository}@{digest}"


@dataclass(frozen=True, slots=True)
class PruneResult:
    manifests_evicted: int
    blobs_removed: int
    bytes_freed: int
    usage: CacheUsage


class CacheService:
    def __init__(
        self,
        prefixes: list[str],
        blob_store: BlobStore,
        meta: MetadataStore,
        counters: Counters,
        lock: ContentLock,
        max_bytes: int | None = None,
    ) -> None:
        self.lock = lock
        self.prefixes = prefixes
        self.blob_store = blob_store
        self.meta = meta
        self.counters = counters
        self.max_bytes = max_bytes

    async def stats(self) -> CacheUsage:
        return await self.meta.cache_usage(self.prefixes)

    async def prune(self, max_bytes: int | None = None) -> PruneResult:
        """Evict least recently pulled images until under `max_bytes` (default: the configured
        limit), then remove whatever no cached manifest needs any more."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        evicted = removed = freed = 0
        usage = await self.stats()
        if limit is not None and usage.bytes > limit:
            manifests = await self.meta.cached_manifests(self.prefixes)
            last_used = await self.counters.touched([touch_key(r, d) for r, d in manifests])
            manifests.sort(key=lambda m: last_used.get(touch_key(*m), 0.0))
            for repository, digest in manifests:
                if usage.bytes <= limit:
                    break
                if await self.meta.delete_manifest(repository, digest):
                    evicted += 1
                count, size = await self._sweep()
                removed, freed = removed + count, freed + size
                usage = await self.stats()
        count, size = await self._sweep()
        usage = await self.stats()
        if evicted or count:
            log.info(
                "cache prune: %d manifest(s) evicted, %d blob(s), %d bytes freed",
                evicted,
                removed + count,
                freed + size,
            )
        return PruneResult(evicted, removed + count, freed + size, usage)

    async def _sweep(self) -> tuple[int, int]:
        candidates = await self.meta.unneeded_cached_blobs(self.prefixes)
        if not candidates:
            return 0, 0
        sizes = {d: await self.meta.blob_size(d) or 0 for d in candidates}
        async with self.lock.sweeping():
            detached = {}
            for digest in candidates:
                token = await self.blob_store.detach(digest)
                if token is not None:
                    detached[digest] = token
            gone = set(await self.meta.forget_blobs(self.prefixes, candidates))
            for digest, token in detached.items():
                if digest in gone:
                    await self.blob_store.drop_detached(token)
                else:
                    await self.blob_store.reattach(digest, token)
        return len(gone), sum(sizes.get(d, 0) for d in gone)
