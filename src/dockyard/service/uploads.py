"""Blob upload sessions: monolithic, streamed and chunked, with digest verification.

The running sha256 of an upload is kept in this process while its chunks arrive in order, so
most uploads are hashed exactly once, as they stream in. When a chunk lands on another process
(several workers), or another algorithm is asked for, the bytes are hashed again at the end:
slower, never wrong. A blob becomes visible only after that check and a durable commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass

from dockyard.core.digest import Digest
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.base import MetadataStore, UploadRecord
from dockyard.service.content_lock import ContentLock, NoLock
from dockyard.storage.base import BlobStore, StorageFullError

log = logging.getLogger("dockyard.uploads")

_MAX_TRACKED_HASHES = 256


@dataclass(frozen=True, slots=True)
class UploadStatus:
    id: str
    repository: str
    size: int


def _unknown(upload_id: str) -> RegistryError:
    return RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, detail={"upload": upload_id[:100]})


class UploadService:
    def __init__(self, blobs: BlobStore, meta: MetadataStore, ttl_seconds: float,
                 lock: ContentLock | None = None) -> None:
        self.lock = lock or NoLock()
        self.blobs = blobs
        self.meta = meta
        self.ttl = ttl_seconds
        # upload id -> (bytes hashed so far, running sha256)
        self._hashes: OrderedDict[str, tuple[int, hashlib._Hash]] = OrderedDict()

    # -- sessions ------------------------------------------------------------------------
    async def start(self, repository: str) -> UploadStatus:
        upload_id = uuid.uuid4().hex
        await self.meta.create_upload(upload_id, repository, time.time())
        try:
            await self.blobs.create_upload(upload_id)
        except StorageFullError:
            await self.meta.delete_upload(upload_id)
            raise
        return UploadStatus(upload_id, repository, 0)

    async def _get(self, repository: str, upload_id: str) -> UploadRecord:
        record = await self.meta.get_upload(upload_id) if len(upload_id) == 32 else None
        if record is None or record.repository != repository:
            raise _unknown(upload_id)
        return record

    async def status(self, repository: str, upload_id: str) -> UploadStatus:
        record = await self._get(repository, upload_id)
        return UploadStatus(record.id, repository, record.size)

    async def cancel(self, repository: str, upload_id: str) -> None:
        await self._get(repository, upload_id)
        await self._drop(upload_id)

    async def _drop(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)
        await self.meta.delete_upload(upload_id)
        await self.blobs.abort_upload(upload_id)

    # -- data ----------------------------------------------------------------------------
    async def append(
        self,
        repository: str,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        content_range: tuple[int, int] | None = None,
        *,
        record: UploadRecord | None = None,
        advance: bool = True,
    ) -> UploadStatus:
        """Write a chunk at the upload's current end; a chunk that does not continue it is 416.

        `advance=False` leaves the recorded size alone: for the last chunk of an upload that
        is committed at once, whose record is then dropped anyway (one transaction fewer)."""
        if record is None:
            record = await self._get(repository, upload_id)
        if content_range is not None and content_range[0] != record.size:
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_INVALID,
                f"chunk starts at {content_range[0]}, upload is at {record.size}",
                status=416,
                headers={
                    "Range": f"0-{record.size - 1}" if record.size else "0-0",
                    "Location": f"/v2/{repository}/blobs/uploads/{upload_id}",
                },
            )
        new_size = await self._write(upload_id, record.size, chunks)
        if (
            content_range is not None
            and new_size - record.size != content_range[1] - content_range[0] + 1
        ):
            await self._rewind(upload_id, record.size, new_size)
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_INVALID,
                "chunk length does not match Content-Range",
                status=416,
            )
        if advance and not await self.meta.advance_upload(
            upload_id, record.size, new_size, time.time()
        ):
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_INVALID, "upload changed concurrently", status=416
            )
        return UploadStatus(upload_id, repository, new_size)

    async def _write(self, upload_id: str, offset: int, chunks: AsyncIterator[bytes]) -> int:
        tracked = self._hashes.pop(upload_id, None)
        hasher = None
        if offset == 0:
            hasher = hashlib.sha256()
        elif tracked is not None and tracked[0] == offset:
            hasher = tracked[1]

        try:
            new_size = await self.blobs.write_upload(upload_id, offset, chunks, hasher)
        except KeyError as exc:
            raise _unknown(upload_id) from exc
        if hasher is not None:
            self._hashes[upload_id] = (new_size, hasher)
            while len(self._hashes) > _MAX_TRACKED_HASHES:
                self._hashes.popitem(last=False)
        return new_size

    async def _rewind(self, upload_id: str, offset: int, _size: int) -> None:
        self._hashes.pop(upload_id, None)

        async def nothing() -> AsyncIterator[bytes]:
            return
            yield b""

        await self.blobs.write_upload(upload_id, offset, nothing())

    async def finish(
        self,
        repository: str,
        upload_id: str,
        digest_text: str | None,
        chunks: AsyncIterator[bytes] | None,
        content_range: tuple[int, int] | None = None,
    ) -> str:
        """Close an upload: take a last chunk, verify the digest, commit and link the blob."""
        if not digest_text:
            raise RegistryError(ErrorCode.DIGEST_INVALID, "digest parameter missing")
        digest = Digest.parse(digest_text)
        record = await self._get(repository, upload_id)
        size = record.size
        if chunks is not None:
            size = (await self.append(repository, upload_id, chunks, content_range,
                                      record=record, advance=False)).size
        actual = await self._digest_of(upload_id, size, digest.algorithm)
        if actual != digest.hex:
            await self._drop(upload_id)
            raise RegistryError(ErrorCode.DIGEST_INVALID, detail={"digest": str(digest)})
        await self._commit(repository, upload_id, str(digest), size)
        return str(digest)

    async def _digest_of(self, upload_id: str, size: int, algorithm: str) -> str:
        tracked = self._hashes.pop(upload_id, None)
        if algorithm == "sha256" and tracked is not None and tracked[0] == size:
            return tracked[1].hexdigest()
        hasher = hashlib.new(algorithm)
        async for chunk in self.blobs.read_upload(upload_id):
            await asyncio.to_thread(hasher.update, chunk)
        return hasher.hexdigest()

    async def _commit(self, repository: str, upload_id: str, digest: str, size: int) -> None:
        async with self.lock.publishing():
            await self.blobs.commit_upload(upload_id, digest)
            await self.meta.complete_upload(upload_id, repository, digest, size)

    async def monolithic(
        self, repository: str, digest_text: str, chunks: AsyncIterator[bytes]
    ) -> str:
        """POST ?digest= with the whole blob as the body."""
        Digest.parse(digest_text)
        status = await self.start(repository)
        try:
            return await self.finish(repository, status.id, digest_text, chunks)
        except BaseException:
            await self._drop(status.id)
            raise

    # -- housekeeping --------------------------------------------------------------------
    async def purge_expired(self) -> int:
        """Remove uploads nobody touched for the TTL, data and record alike."""
        expired = await self.meta.expired_uploads(time.time() - self.ttl)
        for record in expired:
            log.info("removing abandoned upload %s in %s", record.id, record.repository)
            await self._drop(record.id)
        return len(expired)
