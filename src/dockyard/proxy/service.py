"""Pull-through cache: repositories named `UPSTREAM/REPO` are served from the configured upstream
registry and kept here, and with a mirror upstream so are names that exist nowhere locally.

What it guarantees:
* Only what a client asks for is fetched. Manifests by digest and blobs are immutable and never
  fetched twice; a tag is served from cache for the upstream's TTL, then revalidated with a HEAD.
* Any number of concurrent misses, in any worker process, cause one upstream request (a
  manifest: one fetch under a lock file; a blob: one download that every client follows, see
  `downloads`), and a failed download leaves nothing in the cache.
* When the upstream is down, slow or rate-limiting, cached content is still served (tags past
  their TTL with a `Warning` header) and the upstream's `Retry-After` is respected.
* No SSRF: only configured upstreams are ever contacted, with repository names that passed the
  name grammar; redirects are followed only for blob downloads. (The token service an upstream's
  challenge names is asked too, with the credentials only as `client.auth` allows.)
* A cached repository holds only what its upstream served for it: content held here for another
  repository, perhaps a private one, is never answered by digest alone.
* A manifest is a manifest whichever endpoint asked for it: what the upstream sends for a blob
  request is kept as a manifest of the cached repository when its bytes are one, before any
  client gets the last of them, so the blobs endpoint counts its reads as pulls too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.client.errors import ClientError, NotFound
from dockyard.config import Settings
from dockyard.core.digest import Digest
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.file_lock import held
from dockyard.core.manifest import MAX_MANIFEST_BYTES, may_be_manifest
from dockyard.metadata.base import ManifestRecord, MetadataStore, QuotaExceeded
from dockyard.metadata.counters import Counters
from dockyard.proxy.downloads import Adoption, Downloads
from dockyard.proxy.health import UpstreamHealth
from dockyard.proxy.repository import ProxiedRepository
from dockyard.proxy.upstream import Route, UpstreamRegistry, upstream_error
from dockyard.service.blobs import BlobInfo
from dockyard.service.cache import touch_key
from dockyard.service.content_lock import ContentLock
from dockyard.service.listing import Page, paginate
from dockyard.service.manifests import ManifestService, parse_reference
from dockyard.service.repository import Hidden, LocalRepository, Repository
from dockyard.storage.base import BlobStore

if TYPE_CHECKING:
    from dockyard.service.metrics import Metrics

log = logging.getLogger("dockyard.proxy")

# Repositories looked at to find a cached copy of a blob (past that, it is downloaded again).
ADOPT_LOOKUP = 1000
# Small cached blobs found not to be manifests, remembered per process (see `cached_content`).
NOT_MANIFESTS_KEPT = 50_000


class ProxyService:
    def __init__(
        self,
        settings: Settings,
        blob_store: BlobStore,
        meta: MetadataStore,
        manifests: ManifestService,
        counters: Counters,
        lock: ContentLock,
    ) -> None:
        self.counters = counters
        self.lock = lock
        self.upstreams = {u.name: UpstreamRegistry(u) for u in settings.proxies}
        self.mirror = next((u for u in self.upstreams.values() if u.config.mirror), None)
        self.blob_store = blob_store
        self.meta = meta
        self.manifests = manifests
        self.lock_dir = settings.data_dir / "proxy"
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        self._local_locks: dict[str, asyncio.Lock] = {}
        self._not_manifests: set[str] = set()
        self.health = UpstreamHealth(counters)
        self.metrics: Metrics | None = None
        self.downloads = Downloads(
            blob_store,
            meta,
            lock,
            self.lock_dir,
            self.health,
            Adoption(self.held_from, self.adopt),
            self._keep_if_manifest,
        )

    def observe(self, metrics: Metrics) -> None:
        """Count hits, misses and upstream failures in `metrics`."""
        self.metrics = metrics
        self.health.on_failure = metrics.upstream_failed

    def looked_up(self, kind: str, hit: bool) -> None:
        if self.metrics is not None:
            self.metrics.cache_lookup(kind, hit)

    def start(self) -> None:
        """Build the upstream clients now, in the worker's event loop: loading the trusted
        certificates takes tens of milliseconds, which the first pull should not wait for."""
        for upstream in self.upstreams.values():
            _ = upstream.client

    async def close(self) -> None:
        self.downloads.close()
        for upstream in self.upstreams.values():
            await upstream.close()

    # -- routing -------------------------------------------------------------------------
    def repository(self, local: LocalRepository, hidden: Hidden | None = None) -> Repository:
        """`local` as clients see it: wrapped when the cache may answer its name (see
        `ProxiedRepository`), as it is otherwise."""
        if self.mirror is None and self.prefixed(local.name) is None:
            return local
        return ProxiedRepository(local, self, hidden)

    def prefixed(self, repository: str) -> Route | None:
        first, _, rest = repository.partition("/")
        upstream = self.upstreams.get(first)
        return Route(upstream, repository, rest) if upstream is not None and rest else None

    async def route(self, repository: str) -> Route | None:
        """The cached repository a name refers to; None for an ordinary local repository."""
        route = self.prefixed(repository)
        if route is not None or self.mirror is None:
            return route
        if await self.meta.repository_exists(repository):
            return None
        return self.mirrored(repository)

    def mirrored(self, repository: str) -> Route:
        """The mirror's cached repository for an un-prefixed name (a mirror is configured)."""
        assert self.mirror is not None
        return Route(self.mirror, f"{self.mirror.name}/{repository}", repository)

    # -- cross-process single flight -----------------------------------------------------
    def _lock_path(self, key: str) -> Path:
        return self.lock_dir / (hashlib.sha256(key.encode()).hexdigest()[:40] + ".lock")

    @contextlib.asynccontextmanager
    async def _one_fetch(self, key: str) -> AsyncIterator[None]:
        """The turn to fetch what `key` names (a manifest, a tag's revalidation): one holder
        across every worker process; the others wait off the event loop, then find it cached."""
        local = self._local_locks.setdefault(key, asyncio.Lock())
        async with local, held(self._lock_path(key)):
            yield

    # -- manifests -----------------------------------------------------------------------
    async def manifest(self, route: Route, reference: str) -> tuple[ManifestRecord, str | None]:
        """The manifest and, when it is served stale, the Warning header to add."""
        record, warning = await self._manifest(route, reference)
        await self.counters.touch(touch_key(route.local, record.digest))
        return record, warning

    async def _manifest(self, route: Route, reference: str) -> tuple[ManifestRecord, str | None]:
        tag, digest = parse_reference(reference, lookup=True)
        if digest is not None:
            record = await self.meta.get_manifest(route.local, str(digest))
            if record is not None:
                self.looked_up("manifest", True)
                return record, None
            async with self._one_fetch(f"manifest:{route.local}@{digest}"):
                record = await self.meta.get_manifest(route.local, str(digest))
                self.looked_up("manifest", record is not None)
                if record is None:
                    record = await self._fetch_manifest(route, str(digest), None)
            return record, None
        assert tag is not None
        record, fresh = await self._cached_tag(route, tag)
        if fresh:
            self.looked_up("manifest", True)
            return record, None  # type: ignore[return-value]
        if not await self.health.available(route):
            self.looked_up("manifest", record is not None)
            return self.health.stale(route, record, wanted=f":{tag}")
        async with self._one_fetch(f"tag:{route.local}:{tag}"):
            record, fresh = await self._cached_tag(route, tag)
            if fresh:
                self.looked_up("manifest", True)
                return record, None  # type: ignore[return-value]
            try:
                head = await route.upstream.client.head_manifest(route.remote, tag)
                if head is None:
                    raise RegistryError(
                        ErrorCode.MANIFEST_UNKNOWN,
                        f"{route.upstream.name} has no {route.remote}:{tag}",
                    )
                if Digest.try_parse(head.digest) is None:
                    # Never requested as given: it names a path on the upstream, not content.
                    raise ClientError(
                        f"{route.upstream.name} named no valid digest for {route.remote}:{tag}"
                    )
                # Still what the cache holds (only its tag was checked): a hit.
                self.looked_up("manifest", record is not None and record.digest == head.digest)
                if record is None or record.digest != head.digest:
                    record = await self._fetch_manifest(route, head.digest, tag)
                await self.meta.mark_tag_checked(route.local, tag, time.time())
                return record, None
            except ClientError as exc:
                await self.health.failed(route, exc)
                self.looked_up("manifest", record is not None)
                log.warning("revalidating %s:%s failed: %s", route.local, tag, exc)
                return self.health.stale(route, record, exc, f":{tag}")

    async def _cached_tag(self, route: Route, tag: str) -> tuple[ManifestRecord | None, bool]:
        record = await self.meta.resolve_tag(route.local, tag)
        if record is None:
            return None, False
        checked = await self.meta.tag_checked_at(route.local, tag)
        fresh = checked is not None and time.time() - checked < route.upstream.config.ttl_seconds
        return record, fresh

    async def _fetch_manifest(self, route: Route, digest: str, tag: str | None) -> ManifestRecord:
        wanted = f":{tag}" if tag else f"@{digest}"
        await self.health.check(route, wanted)
        try:
            fetched = await route.upstream.client.get_manifest(route.remote, digest)
        except NotFound as exc:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, str(exc)) from exc
        except ClientError as exc:
            await self.health.failed(route, exc)
            raise upstream_error(route, exc, wanted) from exc
        return await self.manifests.store_fetched(
            route.local, fetched.body, fetched.media_type, tag, digest
        )

    async def tags(self, route: Route, n: int | None, last: str | None) -> Page:
        """The upstream's tag list; the cached tags when it cannot be reached."""
        names: list[str] | None = None
        if await self.health.available(route):
            try:
                names = sorted(await route.upstream.client.list_tags(route.remote))
            except NotFound as exc:
                raise RegistryError(ErrorCode.NAME_UNKNOWN, str(exc)) from exc
            except ClientError as exc:
                await self.health.failed(route, exc)
        if names is None:
            if not await self.meta.repository_exists(route.local):
                raise upstream_error(route, RuntimeError("no tag list"))
            names = await self.meta.list_tags(route.local, None, None)
        return paginate(names, n, last)

    # -- blobs ---------------------------------------------------------------------------
    async def cached_blob(self, route: Route, digest: str) -> BlobInfo | None:
        """The blob if its upstream served it for this cached repository. A copy held for any
        other repository does not count: it may be private, and its digest alone must not
        open it (see `adopt`)."""
        size = await self.meta.linked_blob_size(route.local, digest)
        if size is None:
            return None
        return BlobInfo(digest, size)

    async def cached_content(self, route: Route, digest: str) -> BlobInfo | None:
        """What the blobs endpoint of a cached repository serves without the upstream: a blob
        it holds, or a manifest it holds (`manifest` set: reading it is a pull). Bytes too large
        to be a manifest are not looked up twice; smaller ones are, as a cache filled before
        manifests were told apart may hold a manifest as a mere blob."""
        blob = await self.cached_blob(route, digest)
        if blob is not None and blob.size > MAX_MANIFEST_BYTES:
            return blob
        record = await self.meta.get_manifest(route.local, digest)
        if record is None and blob is not None and digest not in self._not_manifests:
            record = await self._manifest_held_as_blob(route, blob)
        if record is None:
            return blob
        await self.counters.touch(touch_key(route.local, digest))
        return BlobInfo(digest, record.size, manifest=True)

    async def _manifest_held_as_blob(self, route: Route, blob: BlobInfo) -> ManifestRecord | None:
        """A small blob of a cached repository, looked at once per process: when its bytes are
        a manifest (an older cache linked it as a blob, or a prune left its link behind), it
        is kept as the manifest it is. Others are remembered, so warm pulls read no byte
        twice; of those that are not JSON only the first bytes are read."""
        digest, body = blob.digest, None
        try:
            if blob.size:
                end = min(255, blob.size - 1)
                head = b"".join([c async for c in self.blob_store.read(digest, 0, end)])
                if may_be_manifest(head):
                    body = b"".join([c async for c in self.blob_store.read(digest)])
        except Exception as exc:  # gone under a prune, say: answered as a blob would be
            log.info("could not look at cached blob %s: %s", digest, exc)
            return None
        if body is not None:
            try:
                if await self._keep_if_manifest(route, digest, body):
                    return await self.meta.get_manifest(route.local, digest)
            except RegistryError as exc:
                if exc.code != ErrorCode.DIGEST_INVALID:
                    raise
                log.warning("cached blob %s does not match its digest", digest)
                return None
        if len(self._not_manifests) >= NOT_MANIFESTS_KEPT:
            self._not_manifests.clear()
        self._not_manifests.add(digest)
        return None

    async def is_manifest(self, route: Route, digest: str) -> bool:
        return await self.meta.get_manifest(route.local, digest) is not None

    async def _holds_as_manifest(self, holders: list[str], digest: str) -> bool:
        for holder in holders:
            if (
                self.prefixed(holder) is not None
                and await self.meta.get_manifest(holder, digest) is not None
            ):
                return True
        return False

    async def adopt(self, route: Route, digest: str, size: int) -> bool:
        """Link a blob held here into the cached repository, once its upstream has just said
        it serves that digest, with that size, for that repository, without downloading it
        again. Only bytes this same upstream once sent (linked in one of its cached
        repositories) are taken on its word: an upstream that merely claims a digest held only
        by local repositories, or sent by another upstream (perhaps one for accounts only, where
        this one is open to anonymous clients), must prove it by sending the bytes, or it could
        vouch them out. Raises `QuotaExceeded` when the cache's namespace has no room for it."""
        holders = await self._holders_sent_by(route, digest)
        if not holders:
            return False
        # A manifest is downloaded again instead, and so kept as a manifest here too: linked
        # as a mere blob, its reads through the blobs endpoint would not count as pulls.
        if size <= MAX_MANIFEST_BYTES and await self._holds_as_manifest(holders, digest):
            return False
        async with self.lock.publishing():
            if (
                await self.meta.blob_size(digest) != size
                or await self.blob_store.stat(digest) is None
            ):
                return False
            await self.meta.link_blob(route.local, digest, size)
        return True

    async def held_from(self, route: Route, digest: str) -> bool:
        """Whether bytes of `digest` that this route's upstream once sent are held here (so
        `adopt` may take them on the upstream's word)."""
        return bool(await self._holders_sent_by(route, digest))

    async def _holders_sent_by(self, route: Route, digest: str) -> list[str]:
        """The repositories linking `digest`, when one of them is a cached repository of
        this route's upstream; empty otherwise."""
        holders = await self.meta.repositories_linking(digest, limit=ADOPT_LOOKUP)
        if any(self._sent_by(holder, route.upstream) for holder in holders):
            return holders
        return []

    def _sent_by(self, repository: str, upstream: UpstreamRegistry) -> bool:
        held = self.prefixed(repository)
        return held is not None and held.upstream is upstream

    async def blob_size(self, route: Route, digest: str) -> int:
        """For HEAD: the size, asking the upstream without downloading anything."""
        digest = str(Digest.parse(digest))
        cached = await self.cached_blob(route, digest)
        if cached is not None:
            return cached.size
        arrived = self.downloads.verified_size(route, digest)  # a pull just had it whole
        if arrived is not None:
            return arrived
        await self.health.check(route, f"@{digest}")
        try:
            size = await route.upstream.client.blob_size(route.remote, digest)
        except ClientError as exc:
            await self.health.failed(route, exc)
            raise upstream_error(route, exc, f"@{digest}") from exc
        if size is None:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": digest})
        # A HEAD keeps nothing it must: past the namespace's quota it only answers.
        with contextlib.suppress(QuotaExceeded):
            await self.adopt(route, digest, size)
        return size

    async def fetch_blob(
        self, route: Route, digest: str
    ) -> tuple[int, AsyncGenerator[bytes, None]]:
        """Start (or join) the download of an uncached blob; stream it as it arrives."""
        return await self.downloads.fetch(route, digest)

    async def _keep_if_manifest(self, route: Route, digest: str, body: bytes) -> bool:
        """Keep verified bytes the upstream sent for a blob request as a manifest of the cached
        repository when they are one; whether they are."""
        if not may_be_manifest(body):  # layers: no parsing
            return False
        try:
            await self.manifests.store_fetched(route.local, body, None, None, digest)
        except RegistryError as exc:
            if exc.code not in (ErrorCode.MANIFEST_INVALID, ErrorCode.MANIFEST_TOO_LARGE):
                raise
            return False  # JSON that is no manifest (a config, say): a blob like any other
        await self.counters.touch(touch_key(route.local, digest))
        return True
