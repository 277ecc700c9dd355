"""Blob store on a local filesystem: temp file, fsync, atomic rename.

Layout under the root: `blobs/<alg>/<2 hex>/<hex>` for committed content and `uploads/<id>` for
data in flight. Digests and upload ids are validated before they become paths, so a name can
never point outside the root.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path

from dockyard.core.digest import Digest
from dockyard.core.file_lock import try_lock
from dockyard.storage.base import Digester, Staged, StorageFullError, UploadBusyError

CHUNK = 1024 * 1024
# Downloads are read this much at a time: a piece that stays in the CPU's L2 cache while it is
# read, handed to the HTTP server and copied to the socket; the fastest size tried for large
# pulls (figures in bench/README.md).
READ_CHUNK = 512 * 1024
# Received pieces are handed to a worker thread (hash, then write) in batches this large: the
# hop costs little against it, and larger batches were no faster while concurrent uploads held
# more memory in flight (bench/README.md).
WRITE_BATCH = 256 * 1024
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
# A small write (`put`) left this long was cut short by a crash, not in progress.
LEFTOVER_AGE_SECONDS = 3600
# Threads that share a `remove_many`: more overlapped no further on the 2-core VM.
REMOVERS = 4


_PROBE = bytearray(1)


def _cached(fd: int, offset: int) -> bool:
    """Whether the byte at `offset` is in the page cache (a one-byte RWF_NOWAIT read). The
    kernel reads ahead in order, so a cached last byte means the span before it is cached too."""
    if not _NOWAIT:
        return False
    try:
        return os.preadv(fd, (_PROBE,), offset, _NOWAIT) == 1
    except OSError:  # EAGAIN: on the disk; EOPNOTSUPP: a filesystem without RWF_NOWAIT (tmpfs)
        return False


def _full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _sync_file_range() -> Callable[[int, int, int], None] | None:
    """Linux's sync_file_range(2), which Python's os module does not offer."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int

    def start_writeback(fd: int, offset: int, length: int) -> None:
        call(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a hint: its failure changes nothing

    return start_writeback


_SYNC_FILE_RANGE_WRITE = 2
_start_writeback = _sync_file_range()


def _write_batch(fd: int, position: int, pieces: list[bytes], write_back: bool = False) -> None:
    """Write one batch at `position` (in a worker thread: pwrite releases the GIL).
    `write_back` starts the disk writing it at once, without waiting: the fsync before the
    blob is acknowledged then finds little left to do, instead of the whole blob (a large push
    otherwise spends much of its time in that last fsync; bench/README.md)."""
    start = position
    for piece in pieces:
        view = memoryview(piece)
        while view:
            written = os.pwrite(fd, view, position)
            position += written
            view = view[written:]
    if write_back and _start_writeback is not None:
        _start_writeback(fd, start, position - start)


def _hash_batch(digester: Digester, pieces: list[bytes]) -> None:
    """Feed one batch to the running hash (in a worker thread: hashlib releases the GIL on
    pieces this large)."""
    for piece in pieces:
        digester.update(piece)


async def _commit_in_thread(upload_id: str, commit: Callable[[], None]) -> None:
    """Run an upload's commit in a worker thread: a vanished upload file is an unknown upload,
    a full disk a StorageFullError."""
    try:
        await asyncio.to_thread(commit)
    except FileNotFoundError as exc:
        raise KeyError(upload_id) from exc
    except OSError as exc:
        if _full(exc):
            raise StorageFullError(str(exc)) from exc
        raise


def _open_or_none(path: str | Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemBlobStore:
    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root
        self.fsync = fsync
        self.blob_root = root / "blobs"
        self.upload_root = root / "uploads"
        self.trash_root = root / "trash"
        self.blob_root.mkdir(parents=True, exist_ok=True)
        self.upload_root.mkdir(parents=True, exist_ok=True)
        # Paths on the hot paths are plain strings: pathlib's joins and conversions showed in
        # a small push's profile (bench/README.md).
        self._blobs = str(self.blob_root)
        self._uploads = str(self.upload_root)
        # Leftovers of small writes cut short by a crash: never visible, never resumable.
        # Only old ones: admin commands and `dockyard gc` open the store beside a running
        # server, whose writes in progress are files like these, and last far less than this.
        cutoff = time.time() - LEFTOVER_AGE_SECONDS
        for leftover in self.upload_root.glob("*.put"):
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink(missing_ok=True)

    # -- paths ---------------------------------------------------------------------------
    def _blob_file(self, digest: str) -> str:
        parsed = Digest.parse(digest)
        return f"{self._blobs}/{parsed.algorithm}/{parsed.hex[:2]}/{parsed.hex}"

    def _blob_path(self, digest: str) -> Path:
        return Path(self._blob_file(digest))

    def _upload_file(self, upload_id: str) -> str:
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise ValueError("malformed upload id")
        return f"{self._uploads}/{upload_id}"

    def _upload_path(self, upload_id: str) -> Path:
        return Path(self._upload_file(upload_id))

    # -- committed blobs -----------------------------------------------------------------
    async def stat(self, digest: str) -> int | None:
        try:
            return os.stat(self._blob_file(digest)).st_size
        except FileNotFoundError:
            return None

    async def url_for(self, digest: str) -> str | None:
        return None

    def local_path(self, digest: str) -> Path | None:
        return self._blob_path(digest)

    async def read(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """The bytes in READ_CHUNK reads. A read whose last page is in the page cache is done right
        here (one copy, no thread hop); one that would wait for the disk goes to a worker
        thread, so a cold blob does not stall the event loop."""
        fd = os.open(self._blob_file(digest), os.O_RDONLY)
        position = start
        stop = os.fstat(fd).st_size if end is None else end + 1
        try:
            while position < stop:
                size = min(READ_CHUNK, stop - position)
                if _cached(fd, position + size - 1):
                    chunk = os.pread(fd, size, position)
                else:
                    chunk = await asyncio.to_thread(os.pread, fd, size, position)
                if not chunk:
                    break
                position += len(chunk)
                yield chunk
        finally:
            os.close(fd)

    async def get(self, digest: str) -> bytes | None:
        try:
            return self._blob_path(digest).read_bytes()
        except FileNotFoundError:
            return None

    async def put(self, digest: str, data: bytes) -> None:
        target = self._blob_file(digest)
        if os.path.exists(target):
            return
        tmp = f"{self._uploads}/{uuid.uuid4().hex}.put"
        try:
            await asyncio.to_thread(self._write_and_publish, tmp, target, data)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if _full(exc):
                raise StorageFullError(str(exc)) from exc
            raise

    def _write_and_publish(self, tmp: str, target: str, data: bytes) -> None:
        """One thread hop for both (each hop is two context switches and a GIL handover)."""
        self._write_file(tmp, data)
        self._publish(tmp, target)

    def _write_file(self, path: str, data: bytes) -> None:
        with open(path, "wb") as f:
            f.write(data)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())

    def _publish(self, tmp: str, target: str) -> None:
        """Rename a complete, synced file into place; the directory entry is synced too."""
        folder = os.path.dirname(target)
        try:
            os.replace(tmp, target)
        except FileNotFoundError:  # the first blob under this prefix
            if not os.path.exists(tmp):
                raise
            os.makedirs(folder, exist_ok=True)
            os.replace(tmp, target)
            if self.fsync:
                _fsync_dir(os.path.dirname(folder))  # the new folder's own entry
        if self.fsync:
            _fsync_dir(folder)

    async def delete(self, digest: str) -> None:
        # Off the event loop: an unlink waits on the file system's journal, and the collector
        # removes thousands while requests are served (figure in bench/README.md).
        await asyncio.to_thread(_unlink, self._blob_file(digest))

    async def remove_many(self, digests: Sequence[str]) -> dict[str, int]:
        # A few threads, each unlinking its share in turn: an unlink waits on the journal
        # rather than the CPU, so overlapping them shortens a batch (and the time the
        # collector holds the content lock), while a hop to a thread per file cost more
        # than the unlink itself (figures in bench/README.md).
        paths = [self._blob_file(d) for d in digests]
        share = -(-len(paths) // REMOVERS) or 1
        parts = await asyncio.gather(
            *(
                asyncio.to_thread(_stat_and_unlink_all, paths[start : start + share])
                for start in range(0, len(paths), share)
            )
        )
        sizes = [size for part in parts for size in part]
        return {d: size for d, size in zip(digests, sizes, strict=True) if size is not None}

    async def detach(self, digest: str) -> str | None:
        source = self._blob_path(digest)
        self.trash_root.mkdir(exist_ok=True)
        target = self.trash_root / f"{digest.replace(':', '-')}.{uuid.uuid4().hex}"
        try:
            os.rename(source, target)
        except FileNotFoundError:
            return None
        return target.name

    async def quarantine(self, digest: str) -> str | None:
        folder = self.root / "quarantine"
        folder.mkdir(exist_ok=True)
        target = folder / f"{digest.replace(':', '-')}.{uuid.uuid4().hex[:8]}"
        try:
            os.rename(self._blob_path(digest), target)
        except FileNotFoundError:
            return None
        return str(target)

    def _trash_path(self, token: str) -> Path:
        if "/" in token or token.startswith("."):
            raise ValueError("malformed token")
        return self.trash_root / token

    async def reattach(self, digest: str, token: str) -> None:
        detached, target = self._trash_path(token), self._blob_path(digest)
        if target.exists():
            detached.unlink(missing_ok=True)  # a fresh copy was committed meanwhile
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(detached, target)

    async def drop_detached(self, token: str) -> None:
        self._trash_path(token).unlink(missing_ok=True)

    async def iter_digests(self) -> AsyncIterator[str]:
        for alg_dir in sorted(self.blob_root.iterdir()):
            for prefix in sorted(alg_dir.iterdir()):
                for entry in sorted(prefix.iterdir()):
                    digest = f"{alg_dir.name}:{entry.name}"
                    if Digest.try_parse(digest):
                        yield digest

    # -- uploads -------------------------------------------------------------------------
    async def create_upload(self, upload_id: str) -> None:
        # In a worker thread: creating a file waits for the file system's journal, which the
        # syncs of concurrent pushes keep busy, and the event loop must not wait with it.
        try:
            await asyncio.to_thread(_create_empty, self._upload_file(upload_id))
        except OSError as exc:
            if _full(exc):
                raise StorageFullError(str(exc)) from exc
            raise

    async def upload_size(self, upload_id: str) -> int | None:
        try:
            return os.stat(self._upload_file(upload_id)).st_size
        except FileNotFoundError:
            return None

    @contextlib.contextmanager
    def hold_upload(self, upload_id: str) -> Iterator[None]:
        """An flock on the upload file: shared by every worker process of this host, and let
        go by the kernel when a process dies. Never blocking, so no executor thread (which
        the writes need) ever waits on it."""
        path = self._upload_file(upload_id)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise KeyError(upload_id) from exc
        try:
            if not try_lock(fd):
                raise UploadBusyError(upload_id)
            # The holder before us may have committed (renamed) or dropped the file after we
            # opened it: the lock then guards a blob or nothing, never this upload.
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                raise KeyError(upload_id)
            yield
        finally:
            os.close(fd)

    async def trim_upload(self, upload_id: str, size: int, piece: str | None = None) -> None:
        try:
            fd = os.open(self._upload_file(upload_id), os.O_WRONLY)
        except FileNotFoundError as exc:
            raise KeyError(upload_id) from exc
        try:
            if os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
        finally:
            os.close(fd)

    async def write_upload(
        self,
        upload_id: str,
        offset: int,
        chunks: AsyncIterator[bytes],
        digester: Digester | None = None,
        *,
        piece: str | None = None,
    ) -> int:
        """Pieces are batched and hashed and written in a worker thread, one batch in flight
        while the next one is received: the event loop only receives."""
        path = self._upload_file(upload_id)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError as exc:
            raise KeyError(upload_id) from exc
        loop = asyncio.get_running_loop()
        # The batch being written and hashed, each in its own worker thread: the two overlap
        # with each other and with receiving the next batch, so no single thread has to do
        # both (hashing and writing one after the other held a large push to that thread's
        # pace; bench/README.md).
        in_flight: tuple[asyncio.Future[None], ...] = ()

        def absorb(batch: list[bytes], at: int) -> tuple[asyncio.Future[None], ...]:
            writing = loop.run_in_executor(None, _write_batch, fd, at, batch, self.fsync)
            if digester is None:
                return (writing,)
            return writing, loop.run_in_executor(None, _hash_batch, digester, batch)

        try:
            # Cut back only what is there beyond `offset` (a chunk that failed): ext4 flushes a
            # file on close after it was truncated, even to the length it already had.
            if os.fstat(fd).st_size != offset:
                os.ftruncate(fd, offset)
            position = offset
            batch: list[bytes] = []
            batched = 0
            async for chunk in chunks:
                if not chunk:
                    continue
                batch.append(chunk)
                batched += len(chunk)
                if batched >= WRITE_BATCH:
                    for job in in_flight:
                        await job
                    in_flight = absorb(batch, position)
                    position += batched
                    batch, batched = [], 0
            if batch:
                for job in in_flight:
                    await job
                in_flight = absorb(batch, position)
                position += batched
            for job in in_flight:
                await job
            in_flight = ()
            return position
        except BaseException as exc:
            # Let every job in flight land before undoing the batch (a failed write may leave
            # its hash still running, and the reverse), so nothing is written or hashed after
            # the truncation below.
            for job in in_flight:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(job)
            # A failed or interrupted chunk counts for nothing: the upload stays at `offset`.
            os.ftruncate(fd, offset)
            if isinstance(exc, OSError) and _full(exc):
                raise StorageFullError(str(exc)) from exc
            raise
        finally:
            os.close(fd)

    follows_uploads = True

    # An upload's file is renamed into place when committed: nothing to copy, so a blob sent
    # whole takes the ordinary way.
    stages_blobs = False

    async def stage(
        self, upload_id: str, digest: str, chunks: AsyncIterator[bytes], digester: Digester
    ) -> Staged:
        raise NotImplementedError("the filesystem store commits an upload's file in place")

    def open_upload(self, upload_id: str) -> int | None:
        return _open_or_none(self._upload_file(upload_id))

    def open_blob(self, digest: str) -> int | None:
        return _open_or_none(self._blob_path(digest))

    def superseded(self, fd: int, digest: str) -> bool:
        try:
            committed = os.stat(self._blob_path(digest)).st_ino
        except FileNotFoundError:
            return False
        return os.fstat(fd).st_ino != committed

    async def read_upload(
        self, upload_id: str, pieces: Sequence[str] | None = None, size: int | None = None
    ) -> AsyncIterator[bytes]:
        try:
            f = open(self._upload_file(upload_id), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as exc:
            raise KeyError(upload_id) from exc
        with f:
            while chunk := await asyncio.to_thread(f.read, 8 * CHUNK):
                yield chunk

    async def commit_upload(
        self,
        upload_id: str,
        digest: str,
        pieces: Sequence[str] | None = None,
        size: int | None = None,
    ) -> None:
        path = self._upload_file(upload_id)
        target = self._blob_file(digest)

        def commit() -> None:
            if self.fsync:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            if os.path.exists(target):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                return
            self._publish(path, target)

        await _commit_in_thread(upload_id, commit)

    async def commit_upload_bytes(self, upload_id: str, digest: str, data: bytes) -> None:
        """Written into the upload's own file, synced and renamed into place in one hop to a
        worker thread; when the blob is already here, nothing is written at all."""
        path = self._upload_file(upload_id)
        target = self._blob_file(digest)

        def commit() -> None:
            fd = os.open(path, os.O_WRONLY)
            try:
                if not os.path.exists(target):
                    _write_batch(fd, 0, [data])
                    # A writer that died mid-chunk may have left bytes past the end.
                    if os.fstat(fd).st_size != len(data):
                        os.ftruncate(fd, len(data))
                    if self.fsync:
                        os.fsync(fd)
            finally:
                os.close(fd)
            if os.path.exists(target):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                return
            self._publish(path, target)

        await _commit_in_thread(upload_id, commit)

    async def abort_upload(self, upload_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._upload_file(upload_id))


def _create_empty(path: str) -> None:
    # Not Path.touch, which tries utime(2) on the missing file first.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _stat_and_unlink_all(paths: list[str]) -> list[int | None]:
    return [_stat_and_unlink(path) for path in paths]


def _stat_and_unlink(path: str) -> int | None:
    """The size of the file removed, or None when it was not there."""
    try:
        size = os.stat(path).st_size
        os.unlink(path)
    except FileNotFoundError:
        return None
    return size
