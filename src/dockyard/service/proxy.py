"""Pull-through cache: repositories named `UPSTREAM/REPO` are served from the configured upstream
registry and kept here, and with a mirror upstream so are names that exist nowhere locally.

What it guarantees:
* Only what a client asks for is fetched. Manifests by digest and blobs are immutable and never
  fetched twice; a tag is served from cache for the upstream's TTL, then revalidated with a HEAD.
* Any number of concurrent misses, in any worker process, cause one upstream request: a file
  lock elects one downloader, everyone else follows the file it writes, so the first byte
  reaches every client before the download ends (clients in the downloading process are
  handed the bytes from memory, see `relay`). A client going away never stops the download.
  The last bytes are held back until the digest is verified, so no client ever receives a
  complete but wrong blob, and a failed download leaves nothing in the cache.
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
import errno
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from dockyard.client.credentials import Credentials
from dockyard.client.errors import (
    ClientError,
    ConnectionFailed,
    DigestMismatch,
    NotFound,
    RateLimited,
    TransferInterrupted,
    Unauthorized,
)
from dockyard.client.registry import RegistryClient
from dockyard.config import Settings, Upstream
from dockyard.core.digest import Digest
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.manifest import MAX_MANIFEST_BYTES, may_be_manifest
from dockyard.metadata.base import ManifestRecord, MetadataStore
from dockyard.metadata.counters import Counters
from dockyard.service.blobs import BlobInfo
from dockyard.service.cache import touch_key
from dockyard.service.content_lock import ContentLock
from dockyard.service.listing import Page, paginate
from dockyard.service.manifests import ManifestService, parse_reference
from dockyard.service.relay import DownloadFailed, Relay
from dockyard.storage.base import BlobStore

log = logging.getLogger("dockyard.proxy")

STALE_WARNING = '110 dockyard "Response is stale: the upstream could not be reached"'
CHUNK = 1024 * 1024
# How long to leave an upstream alone after it failed without saying when to come back.
FAILURE_BACKOFF_SECONDS = 5.0
# Repositories looked at to find a cached copy of a blob (past that, it is downloaded again).
ADOPT_LOOKUP = 1000
# Small cached blobs found not to be manifests, remembered per process (see `cached_content`).
NOT_MANIFESTS_KEPT = 50_000


@dataclass(frozen=True, slots=True)
class Route:
    """A cached repository: `local` is its name here, `remote` its name upstream."""

    upstream: UpstreamRegistry
    local: str
    remote: str


class UpstreamRegistry:
    def __init__(self, config: Upstream) -> None:
        self.config = config
        self.name = config.name
        self._client: RegistryClient | None = None
        self.backoff_until = 0.0
        self.last_error: Exception | None = None

    @property
    def client(self) -> RegistryClient:
        # Created on first use, inside the worker's event loop.
        if self._client is None:
            scheme, host = self.config.url.split("://", 1)
            scheme = scheme.lower()
            credentials = None
            if self.config.username:
                credentials = Credentials(self.config.username, self.config.password or "")
            self._client = RegistryClient(
                host,
                credentials=credentials,
                insecure=scheme == "http",
                timeout=httpx.Timeout(self.config.timeout_seconds),
                # The configured URL names the scheme: an upstream is never probed.
                scheme=scheme,
            )
        return self._client

    def available(self) -> bool:
        return time.time() >= self.backoff_until

    def failed(self, exc: Exception) -> None:
        self.last_error = exc
        wait = exc.retry_after if isinstance(exc, RateLimited) else None
        self.backoff_until = time.time() + (wait if wait is not None else FAILURE_BACKOFF_SECONDS)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def upstream_error(route: Route, exc: Exception, wanted: str = "") -> RegistryError:
    """What a client is told when nothing is cached and the upstream cannot help. `wanted`
    (`:tag` or `@digest`) names what it lacks: having other tags cached is no answer."""
    if isinstance(exc, RateLimited):
        retry = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else {}
        return RegistryError(
            ErrorCode.TOOMANYREQUESTS,
            f"{route.upstream.name} is rate-limiting this cache and it holds "
            f"no copy of {route.local}{wanted}; try again later",
            headers=retry,
        )
    if isinstance(exc, Unauthorized):
        # It was reached and it refused: point at the configuration, not at the network.
        what = (
            f"{route.upstream.name} refused the credentials configured for it (the username "
            "and password of its `proxies` entry)"
            if route.upstream.config.username
            else f"{route.upstream.name} requires credentials (set the username and password "
            "of its `proxies` entry)"
        )
    elif isinstance(exc, ConnectionFailed | RuntimeError):
        what = f"{route.upstream.name} cannot be reached"
    else:
        what = f"{route.upstream.name} failed"
    return RegistryError(
        ErrorCode.UNAVAILABLE,
        f"{what} and this cache holds no copy of {route.local}{wanted}: {exc}",
    )


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
        self._downloads: dict[str, asyncio.Task] = {}
        self._relays: dict[str, Relay] = {}
        self._not_manifests: set[str] = set()

    def start(self) -> None:
        """Build the upstream clients now, in the worker's event loop: loading the trusted
        certificates takes tens of milliseconds, which the first pull should not wait for."""
        for upstream in self.upstreams.values():
            _ = upstream.client

    async def close(self) -> None:
        for task in list(self._downloads.values()):
            task.cancel()
        for upstream in self.upstreams.values():
            await upstream.close()

    # -- routing -------------------------------------------------------------------------
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
    async def _exclusive(self, key: str) -> AsyncIterator[None]:
        """One holder across every worker process; waiters block (in a thread) until free."""
        local = self._local_locks.setdefault(key, asyncio.Lock())
        async with local:
            fd = os.open(self._lock_path(key), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

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
                return record, None
            async with self._exclusive(f"manifest:{route.local}@{digest}"):
                record = await self.meta.get_manifest(route.local, str(digest))
                if record is None:
                    record = await self._fetch_manifest(route, str(digest), None)
            return record, None
        assert tag is not None
        record, fresh = await self._cached_tag(route, tag)
        if fresh:
            return record, None  # type: ignore[return-value]
        if not await self._available(route):
            return self._stale(route, record, wanted=f":{tag}")
        async with self._exclusive(f"tag:{route.local}:{tag}"):
            record, fresh = await self._cached_tag(route, tag)
            if fresh:
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
                    raise ClientError(f"{route.upstream.name} named no valid digest for "
                                      f"{route.remote}:{tag}")
                if record is None or record.digest != head.digest:
                    record = await self._fetch_manifest(route, head.digest, tag)
                await self.meta.mark_tag_checked(route.local, tag, time.time())
                return record, None
            except ClientError as exc:
                await self._note_failure(route, exc)
                log.warning("revalidating %s:%s failed: %s", route.local, tag, exc)
                return self._stale(route, record, exc, f":{tag}")

    def _stale(
        self,
        route: Route,
        record: ManifestRecord | None,
        exc: Exception | None = None,
        wanted: str = "",
    ) -> tuple[ManifestRecord, str | None]:
        if record is None:
            cause = exc or route.upstream.last_error or RuntimeError("unavailable")
            error = upstream_error(route, cause, wanted)
            wait = route.upstream.backoff_until - time.time()
            if wait > 0:
                error.headers.setdefault("Retry-After", str(max(1, int(wait))))
            raise error
        return record, STALE_WARNING

    async def _cached_tag(self, route: Route, tag: str) -> tuple[ManifestRecord | None, bool]:
        record = await self.meta.resolve_tag(route.local, tag)
        if record is None:
            return None, False
        checked = await self.meta.tag_checked_at(route.local, tag)
        fresh = checked is not None and time.time() - checked < route.upstream.config.ttl_seconds
        return record, fresh

    async def _check_available(self, route: Route, wanted: str = "") -> None:
        """Within the upstream's Retry-After (or the backoff after a failure) it is not asked:
        the client gets the error it last gave, with the time left."""
        if not await self._available(route):
            self._stale(route, None, wanted=wanted)

    async def _available(self, route: Route) -> bool:
        """Whether the upstream may be asked now, as any worker or replica last learnt it."""
        upstream = route.upstream
        if not upstream.available():
            return False
        backoff, limited = f"proxy-backoff:{upstream.name}", f"proxy-limited:{upstream.name}"
        marks = await self.counters.touched([backoff, limited])
        until = marks.get(backoff, 0.0)
        if until > upstream.backoff_until:
            upstream.backoff_until = until
            if marks.get(limited, 0.0) >= until:
                upstream.last_error = RateLimited(f"{upstream.name} is rate-limiting",
                                                  until - time.time())
            elif upstream.last_error is None:
                upstream.last_error = ConnectionFailed(f"{upstream.name} failed just now")
        return upstream.available()

    async def _note_failure(self, route: Route, exc: Exception) -> None:
        """Remember the failure here and for every other worker and replica."""
        upstream = route.upstream
        upstream.failed(exc)
        await self.counters.touch(f"proxy-backoff:{upstream.name}", upstream.backoff_until)
        if isinstance(exc, RateLimited):
            await self.counters.touch(f"proxy-limited:{upstream.name}", upstream.backoff_until)

    async def _fetch_manifest(self, route: Route, digest: str, tag: str | None) -> ManifestRecord:
        wanted = f":{tag}" if tag else f"@{digest}"
        await self._check_available(route, wanted)
        try:
            fetched = await route.upstream.client.get_manifest(route.remote, digest)
        except NotFound as exc:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, str(exc)) from exc
        except ClientError as exc:
            await self._note_failure(route, exc)
            raise upstream_error(route, exc, wanted) from exc
        return await self.manifests.store_fetched(
            route.local, fetched.body, fetched.media_type, tag, digest
        )

    async def tags(self, route: Route, n: int | None, last: str | None) -> Page:
        """The upstream's tag list; the cached tags when it cannot be reached."""
        names: list[str] | None = None
        if await self._available(route):
            try:
                names = sorted(await route.upstream.client.list_tags(route.remote))
            except NotFound as exc:
                raise RegistryError(ErrorCode.NAME_UNKNOWN, str(exc)) from exc
            except ClientError as exc:
                await self._note_failure(route, exc)
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
        return BlobInfo(digest, size, self.blob_store.local_path(digest))

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
        return BlobInfo(digest, record.size, self.blob_store.local_path(digest), manifest=True)

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
        vouch them out."""
        holders = await self.meta.repositories_linking(digest, limit=ADOPT_LOOKUP)
        if not any(self._sent_by(holder, route.upstream) for holder in holders):
            return False
        # A manifest is downloaded again instead, and so kept as a manifest here too: linked
        # as a mere blob, its reads through the blobs endpoint would not count as pulls.
        if size <= MAX_MANIFEST_BYTES and await self._holds_as_manifest(holders, digest):
            return False
        async with self.lock.publishing():
            if await self.meta.blob_size(digest) != size or \
                    await self.blob_store.stat(digest) is None:
                return False
            await self.meta.link_blob(route.local, digest, size)
        return True

    def _sent_by(self, repository: str, upstream: UpstreamRegistry) -> bool:
        held = self.prefixed(repository)
        return held is not None and held.upstream is upstream

    async def blob_size(self, route: Route, digest: str) -> int:
        """For HEAD: the size, asking the upstream without downloading anything."""
        digest = str(Digest.parse(digest))
        cached = await self.cached_blob(route, digest)
        if cached is not None:
            return cached.size
        await self._check_available(route, f"@{digest}")
        try:
            size = await route.upstream.client.blob_size(route.remote, digest)
        except ClientError as exc:
            await self._note_failure(route, exc)
            raise upstream_error(route, exc, f"@{digest}") from exc
        if size is None:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": digest})
        await self.adopt(route, digest, size)
        return size

    async def fetch_blob(self, route: Route, digest: str) -> tuple[int, AsyncIterator[bytes]]:
        """Start (or join) the download of an uncached blob; stream it as it arrives."""
        # One download per cached repository and digest: a client of another repository
        # joining it would get bytes its own upstream repository was never asked for.
        upload_id = hashlib.sha256(f"proxy:{route.local}@{digest}".encode()).hexdigest()[:32]
        for _ in range(3):
            size = await self._join_or_lead(route, digest, upload_id)
            if size is not None:
                return size, self._follow(route, digest, upload_id, size)
        raise RegistryError(ErrorCode.UNAVAILABLE, "the download of this blob keeps failing")

    def _verified_file(self, upload_id: str) -> Path:
        return self.lock_dir / f"{upload_id}.verified"

    def _size_file(self, upload_id: str) -> Path:
        return self.lock_dir / f"{upload_id}.size"

    async def _join_or_lead(self, route: Route, digest: str, upload_id: str) -> int | None:
        if upload_id not in self._downloads:
            fd = os.open(self.lock_dir / f"{upload_id}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            else:
                await self._lead(route, digest, upload_id, fd)
        # Follower (or the leader's own client): wait for the size the leader announces.
        deadline = time.monotonic() + route.upstream.config.timeout_seconds
        while time.monotonic() < deadline:
            size_file = self._size_file(upload_id)
            if size_file.exists():
                with contextlib.suppress(ValueError, FileNotFoundError):
                    return int(size_file.read_text())
            cached = await self.cached_blob(route, digest)
            if cached is not None:
                return cached.size
            if upload_id not in self._downloads and self._leader_gone(upload_id):
                return None  # nobody is downloading: try to lead
            await asyncio.sleep(0.01)
        raise RegistryError(ErrorCode.UNAVAILABLE, "timed out waiting for the upstream")

    def _leader_gone(self, upload_id: str) -> bool:
        fd = os.open(self.lock_dir / f"{upload_id}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        finally:
            os.close(fd)

    async def _lead(self, route: Route, digest: str, upload_id: str, fd: int) -> None:
        """Holding the lock: announce the size, then download in a task of its own."""
        try:
            cached = await self.cached_blob(route, digest)
            if cached is None:
                await self._check_available(route)
            size = (
                None
                if cached is not None
                else await route.upstream.client.blob_size(route.remote, digest)
            )
        except ClientError as exc:
            self._release(fd)
            await self._note_failure(route, exc)
            raise upstream_error(route, exc, f"@{digest}") from exc
        except BaseException:
            self._release(fd)
            raise
        if cached is not None:
            self._release(fd)
            return
        if size is None:
            self._release(fd)
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": digest})
        try:
            adopted = await self.adopt(route, digest, size)
        except BaseException:
            self._release(fd)
            raise
        if adopted:
            self._release(fd)
            return
        await self.blob_store.create_upload(upload_id)
        size_file = self._size_file(upload_id)
        size_file.with_suffix(".tmp").write_text(str(size))
        os.replace(size_file.with_suffix(".tmp"), size_file)
        self._relays[upload_id] = Relay(size, digest.split(":", 1)[0])
        self._downloads[upload_id] = asyncio.create_task(
            self._download(route, digest, upload_id, size, fd)
        )

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

    @staticmethod
    def _release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    async def _download(
        self, route: Route, digest: str, upload_id: str, size: int, fd: int
    ) -> None:
        relay = self._relays[upload_id]
        # The disk follows the relay in a task of its own (see `relay`): a failed write
        # fails the relay, which stops the download.
        writer = asyncio.create_task(
            self.blob_store.write_upload(upload_id, 0, relay.unwritten())
        )
        writer.add_done_callback(
            lambda task: task.cancelled() or task.exception() is None
            or relay.fail(task.exception())  # type: ignore[arg-type]
        )
        # Bytes small enough to be a manifest are kept, to tell whether they are one.
        small: list[bytes] | None = [] if size <= MAX_MANIFEST_BYTES else None
        try:
            # Hashed once, by the relay, not by the HTTP client too.
            stream = route.upstream.client.open_blob(route.remote, digest, verify=False)
            async for piece in stream:
                if relay.received + len(piece) > size:
                    # Refused at once: the writer stops at `size`, and the bytes past it
                    # would wait in memory for it forever.
                    raise DigestMismatch(f"the upstream sent more than the {size} bytes it "
                                         "announced")
                await relay.publish(piece)
                if small is not None:
                    small.append(piece)
            if relay.received != size:
                raise DigestMismatch(
                    f"the upstream sent {relay.received} bytes, announced {size}"
                )
            if await relay.digest() != digest:
                raise DigestMismatch(f"the upstream sent bytes whose digest is not {digest}")
            if small is not None:
                # Before any client has the last bytes: by then it is a manifest here.
                await self._keep_if_manifest(route, digest, b"".join(small))
            # Every byte is here and the digest checked: clients may have the last bytes
            # now, while the file is finished, synced and published.
            relay.verify()
            self._verified_file(upload_id).touch()
            if await writer != size:
                raise DigestMismatch("the cached copy came out short")  # never expected
            async with self.lock.publishing():
                await self.blob_store.commit_upload(upload_id, digest)
                await self.meta.link_blob(route.local, digest, size)
            log.info("cached %s from %s (%d bytes)", digest, route.upstream.name, size)
        except BaseException as exc:
            relay.fail(exc)
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer
            if isinstance(exc, DownloadFailed) and relay.error is not None:
                exc = relay.error  # the writer's failure, e.g. a full disk
            log.warning("downloading %s from %s failed: %s", digest, route.upstream.name, exc)
            # A transfer that broke or brought wrong bytes says nothing of the upstream's
            # availability (retrying is right); refusals and unreachability start a backoff.
            if isinstance(exc, ClientError) and not isinstance(
                exc, TransferInterrupted | DigestMismatch
            ):
                await self._note_failure(route, exc)
            with contextlib.suppress(Exception):
                await self.blob_store.abort_upload(upload_id)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._size_file(upload_id).unlink(missing_ok=True)
            self._verified_file(upload_id).unlink(missing_ok=True)
            self._downloads.pop(upload_id, None)
            self._relays.pop(upload_id, None)
            self._release(fd)

    async def _follow(
        self, route: Route, digest: str, upload_id: str, size: int
    ) -> AsyncIterator[bytes]:
        """Read the download as it grows; the last bytes only once the digest is verified."""
        relay = self._relays.get(upload_id)
        if relay is not None:
            try:
                async for chunk in relay.read(lambda: self._open_download(digest, upload_id)):
                    yield chunk
            except DownloadFailed as exc:
                raise RegistryError(
                    ErrorCode.UNAVAILABLE, f"the upstream download failed: {exc}"
                ) from exc
            return
        if self.blob_store.upload_path(upload_id) is None:
            # An object store: nothing to follow while it arrives; stream it once stored.
            while not await self._linked(route, digest):
                if await self._failed(route, digest, upload_id):
                    raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream download failed")
                await asyncio.sleep(0.01)
            async for chunk in self.blob_store.read(digest):
                yield chunk
            return
        handle = None
        delay = 0.002
        try:
            while handle is None:
                # The published copy only once this download made it this repository's: one
                # held for another repository is not what the upstream sent.
                linked = await self._linked(route, digest)
                for path in (
                    self.blob_store.upload_path(upload_id),
                    self.blob_store.local_path(digest) if linked else None,
                ):
                    if path is not None:
                        with contextlib.suppress(FileNotFoundError):
                            handle = open(path, "rb")  # noqa: SIM115 - closed below
                            break
                if handle is None:
                    if await self._failed(route, digest, upload_id):
                        raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream download failed")
                    await asyncio.sleep(0.01)
            offset = 0
            while offset < size:
                chunk = os.pread(handle.fileno(), min(CHUNK, size - offset), offset)
                if not chunk:
                    committed = self.blob_store.local_path(digest)
                    if (
                        committed is not None
                        and await self._linked(route, digest)
                        and os.fstat(handle.fileno()).st_ino != committed.stat().st_ino
                    ):
                        # We were following a download that failed; another one finished.
                        handle.close()
                        handle = open(committed, "rb")  # noqa: SIM115 - closed below
                        continue
                    if await self._failed(route, digest, upload_id):
                        raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream download failed")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.005)
                    continue
                delay = 0.002
                if offset + len(chunk) == size:
                    await self._verified(route, digest, upload_id)
                offset += len(chunk)
                yield chunk
        finally:
            if handle is not None:
                handle.close()

    async def _linked(self, route: Route, digest: str) -> bool:
        """Whether the download finished for this cached repository. The same digest held
        for another repository (perhaps a private one) does not count: a follower must never
        switch to, nor be released by, a copy its upstream did not send."""
        return await self.meta.linked_blob_size(route.local, digest) is not None

    def _open_download(self, digest: str, upload_id: str) -> int | None:
        """A descriptor of the file a download is written to (or was published as)."""
        for path in (self.blob_store.upload_path(upload_id), self.blob_store.local_path(digest)):
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    return os.open(path, os.O_RDONLY)
        return None

    async def _failed(self, route: Route, digest: str, upload_id: str) -> bool:
        if upload_id in self._downloads:
            return False
        if await self._linked(route, digest):
            return False
        return self._leader_gone(upload_id)

    async def _verified(self, route: Route, digest: str, upload_id: str) -> None:
        while not self._verified_file(upload_id).exists() and \
                not await self._linked(route, digest):
            if await self._failed(route, digest, upload_id):
                raise RegistryError(
                    ErrorCode.UNAVAILABLE,
                    "the upstream sent content that does not match its digest; nothing was cached",
                )
            await asyncio.sleep(0.005)
