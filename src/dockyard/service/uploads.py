"""Blob upload sessions: monolithic, streamed and chunked, with digest verification.

The running hash of an upload is kept in this process while its chunks arrive in order, so
most uploads are hashed exactly once, as they stream in: sha256, or the algorithm the client
chose when it started the upload (`?digest-algorithm=sha512`). When a chunk lands on another
process (several workers), or the final digest names another algorithm, the bytes are hashed
again at the end: slower, never wrong. A blob becomes visible only after that check and a
durable commit.

Nothing may ever be stored under a digest its bytes do not hash to, whatever requests race on
one upload: each operation runs under the blob store's hold on the upload, a running hash is
kept only for a chunk the metadata record accepted, and what is committed is exactly what was
hashed (the file nobody else writes meanwhile, or the pieces the record names).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from dockyard.core.bounded_cache import BoundedCache
from dockyard.core.digest import Digest, algorithm_of
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.base import MetadataStore, QuotaExceeded, UploadRecord
from dockyard.service.content_lock import ContentLock, NoLock
from dockyard.service.quotas import refusal as quota_refusal
from dockyard.storage.base import BlobStore, Staged, UploadBusyError

log = logging.getLogger("dockyard.uploads")

_MAX_TRACKED_HASHES = 256
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")


# A last chunk this small, on an upload that holds nothing yet, is taken whole into memory and
# checked there, then written, synced and published by the store in one step (one hop to a
# worker thread, one open of the upload file) instead of streamed, then committed: a small
# image's config and layers are sent that way (POST, then PUT with the body and `?digest=`).
SMALL_BODY = 64 * 1024

# The smallest part an S3 multipart upload takes (but its last): chunks at least this large
# let the store assemble a blob from them without copying bytes again.
S3_PART_MINIMUM = 5 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ChunkMinimum:
    """What `OCI-Chunk-Min-Length` says (`advertised`, 0 = no header) and what is refused
    (`enforced`: a chunk followed by another must hold at least this many bytes)."""

    advertised: int = 0
    enforced: int = 0

    @classmethod
    def of(cls, configured: int | None, on_s3: bool) -> ChunkMinimum:
        """A configured minimum is advertised and enforced. Unset, S3 only advertises its
        part size: clients written before the header (and the v1.1.1 conformance suite)
        send small chunks, and refusing them would break their pushes."""
        if configured is None:
            return cls(S3_PART_MINIMUM if on_s3 else 0, 0)
        return cls(configured, configured)


@dataclass(frozen=True, slots=True)
class UploadStatus:
    id: str
    repository: str
    size: int


def _with_piece(pieces: str | None, piece: str | None) -> str | None:
    if piece is None:
        return pieces
    return f"{pieces} {piece}" if pieces else piece


async def _whole_if_small(
    chunks: AsyncIterator[bytes], limit: int
) -> tuple[bytes | None, AsyncIterator[bytes]]:
    """(the whole body, ...) when it ends within `limit` bytes; otherwise (None, a stream of
    the same bytes, those read so far first)."""
    taken: list[bytes] = []
    total = 0
    async for chunk in chunks:
        taken.append(chunk)
        total += len(chunk)
        if total > limit:
            return None, _chained(taken, chunks)
    return b"".join(taken), _chained([], chunks)


async def _chained(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in first:
        yield chunk
    async for chunk in rest:
        yield chunk


def _unknown(upload_id: str) -> RegistryError:
    return RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, detail={"upload": upload_id[:100]})


class UploadService:
    def __init__(
        self,
        blobs: BlobStore,
        meta: MetadataStore,
        ttl_seconds: float,
        lock: ContentLock | None = None,
        chunk_minimum: ChunkMinimum | None = None,
    ) -> None:
        self.lock = lock or NoLock()
        self.chunk_minimum = chunk_minimum or ChunkMinimum()
        self.blobs = blobs
        self.meta = meta
        self.ttl = ttl_seconds
        # upload id -> (bytes hashed so far, running sha256)
        self._hashes: BoundedCache[str, tuple[int, hashlib._Hash]] = BoundedCache(
            _MAX_TRACKED_HASHES
        )

    # -- sessions ------------------------------------------------------------------------
    async def start(self, repository: str, algorithm: str = "sha256") -> UploadStatus:
        algorithm = algorithm_of(algorithm)
        upload_id = uuid.uuid4().hex
        # The record and the store's file (or marker object) are made at the same time: nobody
        # knows the id before this returns, and whichever of the two fails, the other is undone.
        recorded, created = await asyncio.gather(
            self.meta.create_upload(upload_id, repository, time.time()),
            self.blobs.create_upload(upload_id),
            return_exceptions=True,
        )
        for failure in (recorded, created):
            if isinstance(failure, BaseException):
                if not isinstance(created, BaseException):
                    await self.blobs.abort_upload(upload_id)
                if not isinstance(recorded, BaseException):
                    await self.meta.delete_upload(upload_id)
                raise failure
        # The first chunk picks this hasher up; only this process knows the choice, so a
        # chunk taken by another worker falls back to hashing again at the end.
        self._hashes.put(upload_id, (0, hashlib.new(algorithm)))
        return UploadStatus(upload_id, repository, 0)

    async def _get(self, repository: str, upload_id: str) -> UploadRecord:
        record = await self.meta.get_upload(upload_id) if _UPLOAD_ID.fullmatch(upload_id) else None
        if record is None or record.repository != repository:
            raise _unknown(upload_id)
        return record

    async def status(self, repository: str, upload_id: str) -> UploadStatus:
        record = await self._get(repository, upload_id)
        return UploadStatus(record.id, repository, record.size)

    async def cancel(self, repository: str, upload_id: str) -> None:
        async with self._held(repository, upload_id):
            await self._get(repository, upload_id)
            await self._drop(upload_id)

    async def _drop(self, upload_id: str) -> None:
        self._hashes.pop(upload_id)
        await self.meta.delete_upload(upload_id)
        await self.blobs.abort_upload(upload_id)

    # -- data ----------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _held(self, repository: str, upload_id: str) -> AsyncIterator[None]:
        """Every operation on one upload runs alone: two writes racing for one offset, or a
        write landing between the digest check and the commit, could otherwise leave bytes
        under a digest they do not hash to. A request finding the upload busy is refused
        with where the upload stands, as for a chunk out of order."""
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise _unknown(upload_id)
        try:
            with self.blobs.hold_upload(upload_id):
                yield
        except KeyError as exc:
            raise _unknown(upload_id) from exc
        except UploadBusyError as exc:
            record = await self._get(repository, upload_id)
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_RANGE_INVALID,
                "another request is writing this upload",
                headers={
                    "Range": f"0-{record.size - 1}" if record.size else "0-0",
                    "Location": f"/v2/{repository}/blobs/uploads/{upload_id}",
                },
            ) from exc

    async def append(
        self,
        repository: str,
        upload_id: str,
        chunks: AsyncIterator[bytes],
        content_range: tuple[int, int] | None = None,
    ) -> UploadStatus:
        """Write a chunk at the upload's current end; a chunk that does not continue it is 416."""
        async with self._held(repository, upload_id):
            record = await self._get(repository, upload_id)  # read under the hold
            self._refuse_short_chunk(record)
            new_size, hasher, piece = await self._take(record, chunks, content_range)
            if not await self.meta.advance_upload(
                upload_id, record.size, new_size, time.time(), _with_piece(record.pieces, piece)
            ):
                await self._trim(upload_id, record.size, piece)
                raise RegistryError(
                    ErrorCode.BLOB_UPLOAD_RANGE_INVALID, "upload changed concurrently"
                )
            # Tracked only once accepted: a refused chunk leaves no trace in the hash.
            if hasher is not None:
                self._hashes.put(upload_id, (new_size, hasher))
        return UploadStatus(upload_id, repository, new_size)

    def _refuse_short_chunk(self, record: UploadRecord) -> None:
        """Another chunk is arriving, so the one before it was not the last: it must have held
        the minimum. Only now is that known, so the refusal comes with the chunk after it."""
        minimum = self.chunk_minimum.enforced
        if not minimum or not record.pieces:
            return
        previous = record.size - int(record.pieces.split()[-1].partition(".")[0])
        if previous < minimum:
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_RANGE_INVALID,
                f"every chunk but the last must hold at least {minimum} bytes; the chunk "
                f"before this one held {previous}: start the upload again",
                detail={"min": minimum, "previous": previous},
                headers={
                    "Range": f"0-{record.size - 1}",
                    "Location": f"/v2/{record.repository}/blobs/uploads/{record.id}",
                    "OCI-Chunk-Min-Length": str(minimum),
                },
            )

    async def _take(
        self,
        record: UploadRecord,
        chunks: AsyncIterator[bytes],
        content_range: tuple[int, int] | None,
    ) -> tuple[int, hashlib._Hash | None, str | None]:
        """Write a chunk at `record.size`: (new size, running sha256 if one is known, name of
        the piece written or None when nothing was)."""
        upload_id = record.id
        if content_range is not None and content_range[0] != record.size:
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_RANGE_INVALID,
                f"chunk starts at {content_range[0]}, upload is at {record.size}",
                headers={
                    "Range": f"0-{record.size - 1}" if record.size else "0-0",
                    "Location": f"/v2/{record.repository}/blobs/uploads/{upload_id}",
                },
            )
        tracked = self._hashes.pop(upload_id)
        hasher = None
        if tracked is not None and tracked[0] == record.size:
            hasher = tracked[1]
        elif record.size == 0:
            hasher = hashlib.sha256()
        piece = uuid.uuid4().hex
        try:
            new_size = await self.blobs.write_upload(
                upload_id, record.size, chunks, hasher, piece=piece
            )
        except KeyError as exc:
            raise _unknown(upload_id) from exc
        if (
            content_range is not None
            and new_size - record.size != content_range[1] - content_range[0] + 1
        ):
            await self._trim(upload_id, record.size, f"{record.size}.{piece}")
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_RANGE_INVALID,
                "chunk length does not match Content-Range",
            )
        return new_size, hasher, f"{record.size}.{piece}" if new_size > record.size else None

    async def _trim(self, upload_id: str, size: int, piece: str | None) -> None:
        """Undo a write at `size`; `piece` is its recorded name ("<offset>.<random>")."""
        self._hashes.pop(upload_id)
        try:
            await self.blobs.trim_upload(upload_id, size, piece and piece.partition(".")[2])
        except KeyError as exc:
            raise _unknown(upload_id) from exc

    async def finish(
        self,
        repository: str,
        upload_id: str,
        digest_text: str | None,
        chunks: AsyncIterator[bytes] | None,
        content_range: tuple[int, int] | None = None,
    ) -> str:
        """Close an upload: take a last chunk, verify the digest, commit and link the blob.

        All of it under the hold, and the bytes hashed are the very bytes committed: the
        file as it stands (nothing else writes it meanwhile), or the pieces named here."""
        if not digest_text:
            raise RegistryError(ErrorCode.DIGEST_INVALID, "digest parameter missing")
        digest = Digest.parse(digest_text)
        async with self._held(repository, upload_id):
            record = await self._get(repository, upload_id)
            pieces = tuple(record.pieces.split()) if record.pieces else ()
            if chunks is not None and record.size == 0 and content_range is None:
                whole, chunks = await _whole_if_small(chunks, SMALL_BODY)
                if whole is not None:
                    await self._finish_small(repository, upload_id, digest, whole)
                    return str(digest)
                if self.blobs.stages_blobs:
                    await self._finish_staged(repository, upload_id, digest, chunks)
                    return str(digest)
            if chunks is not None:
                self._refuse_short_chunk(record)
                size, hasher, piece = await self._take(record, chunks, content_range)
                pieces += (piece,) if piece else ()
            else:
                size, tracked = record.size, self._hashes.pop(upload_id)
                hasher = tracked[1] if tracked is not None and tracked[0] == size else None
                # A writer that died mid-chunk may have left bytes past the recorded end.
                await self._trim(upload_id, size, None)
            try:
                if hasher is not None and hasher.name == digest.algorithm:
                    actual = hasher.hexdigest()
                else:
                    actual = await self._hash_upload(upload_id, pieces, size, digest.algorithm)
                if actual != digest.hex:
                    await self._drop(upload_id)
                    raise RegistryError(ErrorCode.DIGEST_INVALID, detail={"digest": str(digest)})
                await self._commit(repository, upload_id, str(digest), size, pieces)
            except KeyError as exc:  # completed or dropped by a request on another replica
                raise _unknown(upload_id) from exc
        return str(digest)

    async def _finish_small(
        self, repository: str, upload_id: str, digest: Digest, data: bytes
    ) -> None:
        """The whole blob in `data`, checked before anything is written: a refused one
        leaves nothing behind, as a refused chunk does."""
        self._hashes.pop(upload_id)
        if hashlib.new(digest.algorithm, data).hexdigest() != digest.hex:
            await self._drop(upload_id)
            raise RegistryError(ErrorCode.DIGEST_INVALID, detail={"digest": str(digest)})
        try:
            await self._commit(repository, upload_id, str(digest), len(data), (), data)
        except KeyError as exc:  # completed or dropped by a request on another replica
            raise _unknown(upload_id) from exc

    async def _finish_staged(
        self, repository: str, upload_id: str, digest: Digest, chunks: AsyncIterator[bytes]
    ) -> None:
        """The whole blob in one request, on a store that can hold it out of sight where it
        is published (S3: a multipart upload of the blob's key): hashed on the way there, and
        published only once the hash matches, so nothing is copied afterwards."""
        self._hashes.pop(upload_id)
        hasher = hashlib.new(digest.algorithm)
        try:
            staged = await self.blobs.stage(upload_id, str(digest), chunks, hasher)
        except KeyError as exc:  # completed or dropped by a request on another replica
            raise _unknown(upload_id) from exc
        try:
            if hasher.hexdigest() != digest.hex:
                await staged.discard()
                await self._drop(upload_id)
                raise RegistryError(ErrorCode.DIGEST_INVALID, detail={"digest": str(digest)})
            await self._commit(repository, upload_id, str(digest), staged.size, (), staged=staged)
        except KeyError as exc:
            raise _unknown(upload_id) from exc
        finally:
            await staged.discard()  # nothing once published; a refusal's parts otherwise

    async def _hash_upload(
        self, upload_id: str, pieces: tuple[str, ...], size: int, algorithm: str
    ) -> str:
        hasher = hashlib.new(algorithm)
        async for chunk in self.blobs.read_upload(upload_id, pieces, size):
            await asyncio.to_thread(hasher.update, chunk)
        return hasher.hexdigest()

    async def _commit(
        self,
        repository: str,
        upload_id: str,
        digest: str,
        size: int,
        pieces: tuple[str, ...],
        data: bytes | None = None,
        *,
        staged: Staged | None = None,
    ) -> None:
        """Publish the upload's bytes (or `data`, the whole blob, written as it is published,
        or `staged`, the whole blob already written out of sight) and link them to the
        repository."""
        try:
            # Looked at before the bytes are published, so a refused blob leaves none behind;
            # `complete_upload` checks again in its transaction, which is what holds.
            await self.meta.check_quota(repository, digest, size)
        except QuotaExceeded as exc:
            await self._drop(upload_id)
            raise quota_refusal(exc) from None
        async with self.lock.publishing():
            if staged is not None:
                await staged.publish()
            elif data is None:
                await self.blobs.commit_upload(upload_id, digest, pieces, size)
            else:
                await self.blobs.commit_upload_bytes(upload_id, digest, data)
            try:
                await self.meta.complete_upload(upload_id, repository, digest, size)
            except QuotaExceeded as exc:
                # Another push took the room since the look above. The bytes are published
                # but recorded nowhere: queued for the collector, which removes them unless
                # a concurrent push of the same digest links them meanwhile (so never
                # deleted here).
                self._hashes.pop(upload_id)
                await self.meta.delete_upload(upload_id)
                await self.meta.enqueue_for_review([digest])
                raise quota_refusal(exc) from None

    async def monolithic(
        self, repository: str, digest_text: str, chunks: AsyncIterator[bytes]
    ) -> str:
        """POST ?digest= with the whole blob as the body."""
        status = await self.start(repository, Digest.parse(digest_text).algorithm)
        try:
            return await self.finish(repository, status.id, digest_text, chunks)
        except BaseException:
            await self._drop(status.id)
            raise

    # -- housekeeping --------------------------------------------------------------------
    async def purge_expired(self) -> int:
        """Remove uploads nobody touched for the TTL, data and record alike."""
        expired = await self.meta.expired_uploads(time.time() - self.ttl)
        removed = 0
        for record in expired:
            try:
                with self.blobs.hold_upload(record.id):
                    await self._drop(record.id)
            except UploadBusyError:
                continue  # written to right now: not abandoned after all
            except KeyError:
                await self._drop(record.id)
            log.info("removed abandoned upload %s in %s", record.id, record.repository)
            removed += 1
        return removed
