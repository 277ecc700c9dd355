"""One download per cached repository and blob, shared by every client that wants it.

Any number of concurrent misses, in any worker process, cause one upstream request (the GET,
its Content-Length the size announced; a HEAD only where a copy may be adopted): a lock
file elects one downloader, everyone else follows the file it writes, so the first byte reaches
every client before the download ends (clients in the downloading process are handed the bytes
from memory, see `relay`). A client going away never stops the download. The last bytes are
held back until the digest is verified, so no client ever receives a complete but wrong blob,
and a failed download leaves nothing in the cache. The blob store is asked for the files it
writes through `open_upload`, `open_blob` and `superseded`, never reached into.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from dockyard.client.blob_body import BlobBody
from dockyard.client.errors import ClientError, DigestMismatch, TransferInterrupted
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.file_lock import is_free, open_lock_file, release, try_lock
from dockyard.core.manifest import MAX_MANIFEST_BYTES
from dockyard.metadata.base import MetadataStore, QuotaExceeded
from dockyard.proxy.health import UpstreamHealth
from dockyard.proxy.relay import DownloadFailed, Relay
from dockyard.proxy.upstream import Route, upstream_error
from dockyard.service.content_lock import ContentLock
from dockyard.service.quotas import refusal as quota_refusal
from dockyard.storage.base import BlobStore

log = logging.getLogger("dockyard.proxy")

CHUNK = 1024 * 1024
# The pieces a download is handed on in, to the disk and to the clients: small, so that each
# stage works on one while the one before works on the next (bench/README.md).
PIECE = 128 * 1024
# Link a blob held here on the upstream's word (digest, size): True when it was.
Adopt = Callable[[Route, str, int], Awaitable[bool]]
# Whether bytes of the digest that the route's upstream once sent are held here.
HeldFrom = Callable[[Route, str], Awaitable[bool]]
# Keep verified bytes as a manifest of the cached repository when they are one.
KeepIfManifest = Callable[[Route, str, bytes], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Adoption:
    """Taking a copy held here instead of downloading it again: `held_from` tells whether
    there is one this upstream sent (only then is the size asked with a HEAD before any
    GET), `adopt` links it on the upstream's word."""

    held_from: HeldFrom
    adopt: Adopt


def _fail_on_error(relay: Relay, writer: asyncio.Task) -> None:
    if not writer.cancelled():
        error = writer.exception()
        if error is not None:
            relay.fail(error)


class Downloads:
    def __init__(
        self,
        blob_store: BlobStore,
        meta: MetadataStore,
        lock: ContentLock,
        lock_dir: Path,
        health: UpstreamHealth,
        adoption: Adoption,
        keep_if_manifest: KeepIfManifest,
    ) -> None:
        self.blob_store = blob_store
        self.meta = meta
        self.lock = lock
        self.lock_dir = lock_dir
        self.health = health
        self.adoption = adoption
        self.keep_if_manifest = keep_if_manifest
        self._downloads: dict[str, asyncio.Task] = {}
        self._relays: dict[str, Relay] = {}

    def close(self) -> None:
        for task in list(self._downloads.values()):
            task.cancel()

    def _leader_lock(self, upload_id: str) -> Path:
        """Held by the process downloading a blob for as long as it downloads."""
        return self.lock_dir / f"{upload_id}.lock"

    async def fetch(self, route: Route, digest: str) -> tuple[int, AsyncGenerator[bytes, None]]:
        """Start (or join) the download of an uncached blob; stream it as it arrives."""
        # One download per cached repository and digest: a client of another repository
        # joining it would get bytes its own upstream repository was never asked for.
        upload_id = _upload_id(route, digest)
        for _ in range(3):
            size = await self._join_or_lead(route, digest, upload_id)
            if size is not None:
                return size, self._follow(route, digest, upload_id, size)
        raise RegistryError(ErrorCode.UNAVAILABLE, "the download of this blob keeps failing")

    def verified_size(self, route: Route, digest: str) -> int | None:
        """The size of this cached repository's download of `digest` when every byte of it
        arrived and matched the digest, and it is being published (synced, then linked):
        its clients have the last bytes by then, so a HEAD right after needs no upstream."""
        upload_id = _upload_id(route, digest)
        if not self._verified_file(upload_id).exists():
            return None
        try:
            return int(self._size_file(upload_id).read_text())
        except (OSError, ValueError):
            return None

    def _verified_file(self, upload_id: str) -> Path:
        return self.lock_dir / f"{upload_id}.verified"

    def _size_file(self, upload_id: str) -> Path:
        return self.lock_dir / f"{upload_id}.size"

    async def _join_or_lead(self, route: Route, digest: str, upload_id: str) -> int | None:
        if upload_id not in self._downloads:
            fd = open_lock_file(self._leader_lock(upload_id))
            try:
                leading = try_lock(fd)
            except BaseException:
                os.close(fd)
                raise
            if leading:
                await self._lead(route, digest, upload_id, fd)
            else:
                os.close(fd)
        # Follower (or the leader's own client): wait for the size the leader announces.
        deadline = time.monotonic() + route.upstream.config.timeout_seconds
        while time.monotonic() < deadline:
            size_file = self._size_file(upload_id)
            if size_file.exists():
                with contextlib.suppress(ValueError, FileNotFoundError):
                    return int(size_file.read_text())
            cached = await self._linked_size(route, digest)
            if cached is not None:
                return cached
            if upload_id not in self._downloads and self._leader_gone(upload_id):
                return None  # nobody is downloading: try to lead
            await asyncio.sleep(0.01)
        raise RegistryError(ErrorCode.UNAVAILABLE, "timed out waiting for the upstream")

    def _leader_gone(self, upload_id: str) -> bool:
        return is_free(self._leader_lock(upload_id))

    async def _lead(self, route: Route, digest: str, upload_id: str, fd: int) -> None:
        """Holding the lock: ask the upstream, announce the size, then download in a task of
        its own (which then owns the lock and the upstream's answer)."""
        body: BlobBody | None = None
        handed = False
        try:
            if await self._linked_size(route, digest) is not None:
                return
            await self.health.check(route)
            try:
                size, body = await self._ask_upstream(route, digest)
            except ClientError as exc:
                await self.health.failed(route, exc)
                raise upstream_error(route, exc, f"@{digest}") from exc
            if size is None:
                raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": digest})
            try:
                # Before any byte of the body is read: a blob the cache's namespace has no
                # room for is refused, not kept (README: quotas).
                await self.meta.check_quota(route.local, digest, size)
                if body is None and await self.adoption.adopt(route, digest, size):
                    return
            except QuotaExceeded as exc:
                raise quota_refusal(exc) from None
            if body is None:  # the copy held here was not adopted: download it after all
                try:
                    body = await route.upstream.client.get_blob(route.remote, digest)
                except ClientError as exc:
                    await self.health.failed(route, exc)
                    raise upstream_error(route, exc, f"@{digest}") from exc
                if body is None:
                    raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": digest})
            await self.blob_store.create_upload(upload_id)
            size_file = self._size_file(upload_id)
            size_file.with_suffix(".tmp").write_text(str(size))
            os.replace(size_file.with_suffix(".tmp"), size_file)
            # The writer hashes what it writes (see `_download`): the relay does not.
            self._relays[upload_id] = Relay(size, None)
            self._downloads[upload_id] = asyncio.create_task(
                self._download(route, digest, upload_id, size, fd, body)
            )
            handed = True
        finally:
            if not handed:
                if body is not None:
                    with contextlib.suppress(Exception):
                        await body.aclose()
                release(fd)

    async def _ask_upstream(self, route: Route, digest: str) -> tuple[int | None, BlobBody | None]:
        """The blob's size (None: the upstream has no such blob) and, when it is to be
        downloaded, the upstream's answer to its GET with the body unread. The GET is sent
        straight away, its Content-Length the size: one request per blob. Only when bytes this
        upstream once sent are held here is a HEAD asked instead, as they may then be adopted
        without a download (`Adoption`)."""
        client = route.upstream.client
        if await self.adoption.held_from(route, digest):
            return await client.blob_size(route.remote, digest), None
        body = await client.get_blob(route.remote, digest)
        if body is None:
            return None, None
        if body.size is not None:
            return body.size, body
        try:
            # No Content-Length (a chunked answer): the size a HEAD gives, which the body is
            # then held to like any announced size.
            return await client.blob_size(route.remote, digest), body
        except BaseException:
            await body.aclose()
            raise

    async def _download(
        self, route: Route, digest: str, upload_id: str, size: int, fd: int, body: BlobBody
    ) -> None:
        relay = self._relays[upload_id]
        # The disk follows the relay in a task of its own (see `relay`): a failed write
        # fails the relay, which stops the download.
        # Hashed where it is written, in the writer's thread, batch by batch: the download
        # never waits for a hashing thread of its own (it runs at most `AHEAD` bytes ahead of
        # the writer either way), and each batch is hashed while it is still in the cache.
        hasher = hashlib.new(digest.split(":", 1)[0])
        writer = asyncio.create_task(
            self.blob_store.write_upload(upload_id, 0, relay.unwritten(), hasher)
        )
        writer.add_done_callback(lambda task: _fail_on_error(relay, task))
        # Bytes small enough to be a manifest are kept, to tell whether they are one.
        small: list[bytes] | None = [] if size <= MAX_MANIFEST_BYTES else None
        try:
            # Hashed once, by the relay, not by the HTTP client too.
            async for piece in body.chunks(PIECE):
                if relay.received + len(piece) > size:
                    # Refused at once: the writer stops at `size`, and the bytes past it
                    # would wait in memory for it forever.
                    raise DigestMismatch(
                        f"the upstream sent more than the {size} bytes it announced"
                    )
                await relay.publish(piece)
                if small is not None:
                    small.append(piece)
            if relay.received != size:
                raise DigestMismatch(f"the upstream sent {relay.received} bytes, announced {size}")
            if await writer != size:
                raise DigestMismatch("the cached copy came out short")  # never expected
            if f"{hasher.name}:{hasher.hexdigest()}" != digest:
                raise DigestMismatch(f"the upstream sent bytes whose digest is not {digest}")
            if small is not None:
                # Before any client has the last bytes: by then it is a manifest here.
                await self.keep_if_manifest(route, digest, b"".join(small))
            # Every byte is here and the digest checked: clients may have the last bytes
            # now, while the file is synced and published.
            relay.verify()
            self._verified_file(upload_id).touch()
            async with self.lock.publishing():
                await self.blob_store.commit_upload(upload_id, digest)
                try:
                    await self.meta.link_blob(route.local, digest, size)
                except QuotaExceeded:
                    # Another pull took the room since the look in `_lead`: the clients had
                    # the bytes, the cache keeps none (the collector removes the published
                    # copy unless something links it meanwhile).
                    await self.meta.enqueue_for_review([digest])
                    raise
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
                await self.health.failed(route, exc)
            with contextlib.suppress(Exception):
                await self.blob_store.abort_upload(upload_id)
            if not isinstance(exc, Exception):
                raise
        finally:
            with contextlib.suppress(Exception):
                await body.aclose()
            self._size_file(upload_id).unlink(missing_ok=True)
            self._verified_file(upload_id).unlink(missing_ok=True)
            self._downloads.pop(upload_id, None)
            self._relays.pop(upload_id, None)
            release(fd)

    async def _follow(
        self, route: Route, digest: str, upload_id: str, size: int
    ) -> AsyncGenerator[bytes, None]:
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
        if not self.blob_store.follows_uploads:
            # An object store: nothing to follow while it arrives; stream it once stored.
            while not await self._linked(route, digest):
                if await self._failed(route, digest, upload_id):
                    raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream download failed")
                await asyncio.sleep(0.01)
            async for chunk in self.blob_store.read(digest):
                yield chunk
            return
        fd = None
        delay = 0.002
        try:
            while fd is None:
                # The published copy only once this download made it this repository's: one
                # held for another repository is not what the upstream sent.
                linked = await self._linked(route, digest)
                fd = self.blob_store.open_upload(upload_id)
                if fd is None and linked:
                    fd = self.blob_store.open_blob(digest)
                if fd is None:
                    if await self._failed(route, digest, upload_id):
                        raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream download failed")
                    await asyncio.sleep(0.01)
            offset = 0
            while offset < size:
                chunk = os.pread(fd, min(CHUNK, size - offset), offset)
                if not chunk:
                    if await self._linked(route, digest) and self.blob_store.superseded(fd, digest):
                        # We were following a download that failed; another one finished.
                        committed = self.blob_store.open_blob(digest)
                        if committed is not None:
                            os.close(fd)
                            fd = committed
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
            if fd is not None:
                os.close(fd)

    async def _linked_size(self, route: Route, digest: str) -> int | None:
        return await self.meta.linked_blob_size(route.local, digest)

    async def _linked(self, route: Route, digest: str) -> bool:
        """Whether the download finished for this cached repository. The same digest held
        for another repository (perhaps a private one) does not count: a follower must never
        switch to, nor be released by, a copy its upstream did not send."""
        return await self._linked_size(route, digest) is not None

    def _open_download(self, digest: str, upload_id: str) -> int | None:
        """A descriptor of the file a download is written to (or was published as)."""
        fd = self.blob_store.open_upload(upload_id)
        return fd if fd is not None else self.blob_store.open_blob(digest)

    async def _failed(self, route: Route, digest: str, upload_id: str) -> bool:
        if upload_id in self._downloads:
            return False
        # The leader's lock before the link: a leader links before it lets go, so a link
        # looked at after the lock was found free is final. The other way round, a download
        # that ends between the two looks would be taken for a failed one.
        if not self._leader_gone(upload_id):
            return False
        return not await self._linked(route, digest)

    async def _verified(self, route: Route, digest: str, upload_id: str) -> None:
        while not self._verified_file(upload_id).exists() and not await self._linked(route, digest):
            if await self._failed(route, digest, upload_id):
                raise RegistryError(
                    ErrorCode.UNAVAILABLE,
                    "the upstream sent content that does not match its digest; nothing was cached",
                )
            await asyncio.sleep(0.005)


def _upload_id(route: Route, digest: str) -> str:
    """One download per cached repository and digest, in every process of the server."""
    return hashlib.sha256(f"proxy:{route.local}@{digest}".encode()).hexdigest()[:32]
