"""The composition root: builds the stores named by the settings and the services over them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Hashable
from functools import cached_property
from typing import TYPE_CHECKING

from dockyard.config import Settings
from dockyard.metadata.base import MetadataStore
from dockyard.metadata.counters import Counters, SQLiteCounters
from dockyard.metadata.migrate import METADATA_FILE
from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.accounts import AccountService
from dockyard.service.activity import Activity
from dockyard.service.audit import AuditService
from dockyard.service.blobs import BlobService
from dockyard.service.cache import CacheService
from dockyard.service.content_lock import ContentLock, FileContentLock
from dockyard.service.events import EventService
from dockyard.service.gc import GarbageCollector
from dockyard.service.listing import ListingService
from dockyard.service.manifests import ManifestService
from dockyard.service.metrics import Metrics
from dockyard.service.quotas import QuotaService
from dockyard.service.readiness import Readiness
from dockyard.service.repositories import RepositoryService
from dockyard.service.repository import Hidden, LocalRepository, Repository, StandIn
from dockyard.service.repository_info import RepositoryInfoService
from dockyard.service.retention import RetentionService
from dockyard.service.signature_gate import SignatureGate
from dockyard.service.signature_policy import SignaturePolicyService
from dockyard.service.tag_rules import TagRuleService
from dockyard.service.uploads import ChunkMinimum, UploadService
from dockyard.storage.base import BlobStore
from dockyard.storage.filesystem import FilesystemBlobStore
from dockyard.storage.private import keep_private

if TYPE_CHECKING:
    from dockyard.service.image_views import ImageViews

log = logging.getLogger("dockyard")

COUNTERS_FILE = "counters.db"


def open_stores(settings: Settings, *, migrate: bool = True) -> tuple[BlobStore, MetadataStore]:
    keep_private(settings.data_dir)
    blob_store = open_blob_store(settings)
    meta: MetadataStore
    if settings.metadata:
        meta = SQLMetadataStore.open_postgres(settings.metadata)
    else:
        meta = SQLMetadataStore.open_sqlite(settings.data_dir / METADATA_FILE, migrate=migrate)
    return blob_store, meta


def open_blob_store(settings: Settings) -> BlobStore:
    """The store of blob bytes the settings name: S3, else the data folder."""
    if settings.storage and settings.storage.startswith("s3://"):
        from dockyard.storage.s3 import S3BlobStore

        return S3BlobStore.from_url(
            settings.storage,
            endpoint=settings.s3_endpoint,
            region=settings.s3_region,
            path_style=settings.s3_path_style,
            access_key=settings.s3_access_key or os.environ.get("AWS_ACCESS_KEY_ID"),
            secret_key=settings.s3_secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY"),
            presign_seconds=settings.s3_redirect_seconds or None,
        )
    return FilesystemBlobStore(settings.data_dir, fsync=settings.fsync)


async def migrate(meta: MetadataStore) -> None:
    """Bring a shared database's schema up to date (SQLite is migrated when opened)."""
    await meta.migrate()


def content_lock(settings: Settings, meta: MetadataStore) -> ContentLock:
    """Replicas share PostgreSQL, not the data folder: with PostgreSQL the lock lives there."""
    shared = meta.shared_content_lock()
    if shared is not None:
        return shared
    return FileContentLock(settings.data_dir / "content.lock")


class Registry:
    """Everything a request handler may call, and the background housekeeping."""

    def __init__(self, settings: Settings, blob_store: BlobStore, meta: MetadataStore) -> None:
        self.settings = settings
        self.blob_store = blob_store
        self.meta = meta
        self.content_lock = content_lock(settings, meta)
        self.blobs = BlobService(blob_store, meta, self.content_lock)
        self.uploads = UploadService(
            blob_store,
            meta,
            settings.upload_ttl_seconds,
            self.content_lock,
            ChunkMinimum.of(
                settings.chunk_min_length, (settings.storage or "").startswith("s3://")
            ),
        )
        self.manifests = ManifestService(blob_store, meta, self.content_lock)
        self.listing = ListingService(meta)
        self.repositories = RepositoryService(blob_store, meta, self.content_lock)
        self.tag_rules = TagRuleService(meta)
        self.quotas = QuotaService(meta)
        self.retention = RetentionService(meta)
        self.signature_policies = SignaturePolicyService(meta)
        self.signature_gate = SignatureGate(self.signature_policies)
        self.audit = AuditService(meta, settings.audit_retention_days)
        self.accounts = AccountService(
            meta.accounts,
            meta,
            settings.default_visibility,
            password_min_length=settings.password_min_length,
            audit=self.audit,
        )
        self.repository_info = RepositoryInfoService(meta)
        # Redis is imported only when configured (as the pull-through cache is, by the
        # assembly): each costs a server process tens of MiB it would never use otherwise.
        self.counters: Counters
        if settings.redis_url:
            from dockyard.metadata.redis_counters import RedisCounters

            self.counters = RedisCounters(settings.redis_url)
        else:
            self.counters = SQLiteCounters(settings.data_dir / COUNTERS_FILE)
        # The pull-through cache, handed over by the assembly (`stand_in`) when configured.
        self.proxy: StandIn | None = None
        self.cache = CacheService(
            [u.name for u in settings.proxies],
            blob_store,
            meta,
            self.counters,
            self.content_lock,
            settings.cache_max_bytes,
        )
        self.gc = GarbageCollector(
            blob_store,
            meta,
            self.content_lock,
            self.uploads,
            grace_seconds=settings.gc_grace_seconds,
            untagged=settings.gc_untagged_manifests,
            # Cached repositories' content is the pull-through cache's to prune.
            keep_prefixes=[u.name for u in settings.proxies],
        )
        self.events = EventService(settings, meta)
        self._housekeeping: asyncio.Task | None = None
        self.readiness = Readiness(blob_store, meta)

    @cached_property
    def image_views(self) -> ImageViews:
        """Made, and its module imported, when a page or `/api/v1/repositories` first asks:
        a server that only serves pulls and pushes never loads it (less to import before
        the first answer, and memory no worker holds)."""
        from dockyard.service.image_views import ImageViews

        return ImageViews(self.meta, self.blob_store, self.manifests, self.accounts)

    def repository(self, name: str, hidden: Hidden | None = None) -> Repository:
        """The repository `name` (validated), local or one the pull-through cache stands in for.
        `hidden` tells whether the caller may not see a local repository of that name."""
        local = LocalRepository(name, self.manifests, self.blobs, self.listing, self.uploads)
        return local if self.proxy is None else self.proxy.repository(local, hidden)

    def version(self) -> Hashable | None:
        """Read now: equal to an earlier value only while nothing in the metadata store
        changed since, whichever process changed it; None when the store cannot tell."""
        return self.meta.version()

    def stand_in(self, proxy: StandIn) -> None:
        """Let `proxy` answer the repositories it stands in for (before `start`)."""
        self.proxy = proxy

    def yield_to(self, activity: Activity) -> None:
        """Let the background collector rest between batches only while `activity` shows this
        process serving requests (without it, it always rests)."""
        self.gc.activity = activity

    def report_to(self, metrics: Metrics) -> None:
        """Let the stores, the collector and the cache count what they do in `metrics`."""
        self.meta.observe_transactions(metrics.transaction_done)
        self.gc.on_round = metrics.gc_round
        self.events.on_dropped = metrics.pulls_dropped
        if self.proxy is not None:
            self.proxy.observe(metrics)

    async def start(self) -> None:
        self._housekeeping = asyncio.create_task(self._purge_loop())
        # Every serving process delivers; the leases keep each webhook to one at a time.
        self.events.start(deliver=not self.settings.read_only)
        if self.proxy is not None:
            self.proxy.start()

    async def close(self) -> None:
        if self._housekeeping is not None:
            # A garbage-collection batch in progress finishes (within the shutdown deadline);
            # cancelling the job between batches leaves nothing half done.
            await self.gc.stop(self.settings.shutdown_timeout_seconds)
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        await self.events.close()
        if self.proxy is not None:
            await self.proxy.close()
        closing = getattr(self.counters, "close", None)  # Redis holds a connection pool
        if closing is not None:
            await closing()
        await self.meta.close()

    async def _purge_loop(self) -> None:
        """The background housekeeping: garbage collection (abandoned uploads included), or
        only the uploads when collection is off; retention policies; the audit log's retention;
        the pull-through cache's limit."""
        # A read-only registry deletes nothing (it may be a copy being moved, `dockyard migrate`).
        collecting = self.settings.gc and not self.settings.read_only
        # Abandoned uploads expire at their own interval whether or not collection is on.
        interval = (
            min(self.settings.gc_interval_seconds, self.settings.upload_purge_interval_seconds)
            if collecting
            else self.settings.upload_purge_interval_seconds
        )
        while True:
            try:
                if collecting:
                    await self.gc.collect(paced=True)
                else:
                    await self.uploads.purge_expired()
            except Exception:
                log.exception("garbage collection failed; will retry")
            if not self.settings.read_only:
                try:
                    await self.retention.apply_all()
                except Exception:
                    log.exception("applying retention policies failed; will retry")
                try:
                    await self.audit.prune()
                except Exception:
                    log.exception("pruning the audit log failed; will retry")
            if self.proxy is not None and self.settings.cache_max_bytes is not None:
                try:
                    await self.cache.prune()
                except Exception:
                    log.exception("pruning the pull-through cache failed; will retry")
            if collecting:
                await self._review_until(time.time() + interval)
            else:
                await asyncio.sleep(interval)

    async def _review_until(self, deadline: float) -> None:
        """Between full rounds, review the queue whenever content queued since is due (and
        none has become due for a moment), rather than at the next round only."""
        while True:
            try:
                if not await self.gc.until_due(deadline):
                    return
                await self.gc.review()
            except Exception:
                log.exception("garbage collection failed; will retry")
                await asyncio.sleep(max(0.0, deadline - time.time()))
                return
