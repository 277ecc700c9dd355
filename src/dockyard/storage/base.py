"""The narrow interface every blob store implements (filesystem, S3).

A blob store knows digests, bytes and upload ids; it never decides whether a blob belongs to a
repository (the metadata store does) and never verifies digests (the service does, then calls
`commit_upload`). Anything visible under a digest must be complete and durable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from dockyard.core.errors import StorageFullError

__all__ = ["BlobStore", "Digester", "Staged", "StorageFullError", "UploadBusyError"]


class UploadBusyError(Exception):
    """Another request is working on this upload right now."""


class Digester(Protocol):
    """What `write_upload` feeds the bytes to: a hashlib object, or anything alike."""

    def update(self, data: bytes, /) -> None: ...


class Staged(Protocol):
    """A blob's bytes, all written, that nobody sees yet (`BlobStore.stage`)."""

    size: int

    async def publish(self) -> None:
        """Make the bytes durable and visible under their digest, atomically (or drop them
        when that digest is already there), and drop the upload they came in. KeyError, with
        nothing published, when the upload is gone."""

    async def discard(self) -> None:
        """Drop the bytes; harmless after `publish` or a first `discard`."""


class BlobStore(Protocol):
    async def stat(self, digest: str) -> int | None:
        """Size of a committed blob, or None."""

    async def url_for(self, digest: str) -> str | None:
        """A URL clients may fetch the blob from directly (presigned), when the backend has
        one and redirects are wanted; None means the registry streams it."""

    def local_path(self, digest: str) -> Path | None:
        """A file that holds the blob, when the backend has one (for zero-copy responses)."""

    def read(self, digest: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes [start, end] inclusive of a committed blob."""

    async def put(self, digest: str, data: bytes) -> None:
        """Store small, already-verified content (manifests, embedded data) under its digest."""

    async def get(self, digest: str) -> bytes | None:
        """Whole content of a small blob, or None."""

    async def delete(self, digest: str) -> None:
        """Remove a blob's bytes; absent is not an error."""

    async def remove_many(self, digests: Sequence[str]) -> dict[str, int]:
        """Remove several blobs' bytes; answers the size of each that was there (absent ones
        are left out). The collector's batches go through here, so a backend may overlap
        the removals."""

    async def detach(self, digest: str) -> str | None:
        """Move a blob out of sight, atomically, before its records are dropped; returns a
        token for `reattach`/`drop_detached` (None when absent). A commit of the same content
        meanwhile simply publishes a fresh copy, so nothing in use is ever lost."""

    async def reattach(self, digest: str, token: str) -> None:
        """Undo `detach` (the records were kept after all)."""

    async def drop_detached(self, token: str) -> None: ...

    async def quarantine(self, digest: str) -> str | None:
        """Move a blob whose bytes do not hash to its digest out of sight for good, kept under
        `quarantine/` for inspection; returns where it went (None when absent)."""

    def iter_digests(self) -> AsyncIterator[str]:
        """Every committed digest (for garbage collection)."""

    async def create_upload(self, upload_id: str) -> None: ...

    def hold_upload(self, upload_id: str) -> AbstractContextManager[None]:
        """Have this upload to oneself for the block, across the processes that share the
        store's data, or raise UploadBusyError at once (never waits); KeyError when the upload
        has no data area. Stores whose writes cannot interfere (S3: every chunk is an object
        of its own, and the metadata record names the accepted ones) hold nothing."""

    async def upload_size(self, upload_id: str) -> int | None:
        """Bytes received so far, or None when the upload has no data area."""

    async def write_upload(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterator[bytes],
        digester: Digester | None = None,
        *,
        piece: str | None = None,
    ) -> int:
        """Write a stream at `offset` (dropping anything after it); return the new size.

        `digester` is fed every byte written, in order, off the event loop where the backend
        can: hashing is the costliest step of an upload, and a worker thread runs it (and the
        write) in parallel with receiving the next bytes. `piece` (a fresh random name) asks a
        store that keeps pieces to write this one under its own key and leave every other
        piece alone; the caller then names the accepted pieces to `read_upload` and
        `commit_upload`."""

    async def trim_upload(self, upload_id: str, size: int, piece: str | None = None) -> None:
        """Forget what was written past `size` (a chunk refused after it was written): the
        piece of that name, or the bytes of the file beyond `size`."""

    def read_upload(
        self, upload_id: str, pieces: Sequence[str] | None = None, size: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream what an upload holds so far (to hash it when no running hash survived):
        exactly the named pieces up to `size` when given."""

    # Whether uploads are local files that readers may follow while they grow (the
    # pull-through cache hands a download to clients in other worker processes that way).
    follows_uploads: bool

    def open_upload(self, upload_id: str) -> int | None:
        """A read-only descriptor of the file an upload is written to; None when it is gone
        or the backend has no such file. The caller closes it."""

    def open_blob(self, digest: str) -> int | None:
        """A read-only descriptor of a committed blob's file; None when absent or the backend
        has no such file. The caller closes it."""

    def superseded(self, fd: int, digest: str) -> bool:
        """Whether `digest` is committed and `fd` (from `open_upload`) reads some other file:
        the upload it followed was dropped and another copy published meanwhile."""

    async def commit_upload(
        self,
        upload_id: str,
        digest: str,
        pieces: Sequence[str] | None = None,
        size: int | None = None,
    ) -> None:
        """Make the upload's bytes durable and visible under `digest`, atomically: exactly
        the named pieces up to `size` when given. KeyError when the upload is gone."""

    async def commit_upload_bytes(self, upload_id: str, digest: str, data: bytes) -> None:
        """`data` is the whole upload, already checked against `digest`: make it durable and
        visible under `digest` as `write_upload` then `commit_upload` would, in one step.
        KeyError when the upload is gone."""

    async def abort_upload(self, upload_id: str) -> None:
        """Drop an upload's data; absent is not an error."""

    # Whether `stage` is offered: a blob sent whole in one request then goes straight to
    # where it is published, instead of into the upload and then copied.
    stages_blobs: bool

    async def stage(
        self, upload_id: str, digest: str, chunks: AsyncIterator[bytes], digester: Digester
    ) -> Staged:
        """Write `chunks`, the whole blob claimed to be `digest`, out of sight, feeding
        `digester` every byte; the caller checks the digest, then publishes or discards.
        KeyError when the upload is gone."""
