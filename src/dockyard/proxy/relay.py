"""One upstream download, handed to the disk and to every reader in this process as it arrives.

The pull-through cache writes a download to a file that readers in other worker processes
follow. In the downloading process the bytes go two ways at once: to the blob store's writer
(which the cache has hash them too, in its thread), and to the clients reading it, straight
from memory. Writing into the page cache can be the slower of the two, so the download may
run ahead of the disk by up to `AHEAD` bytes. (A relay can hash the bytes itself, in a thread
of its own, for a writer that does not.) A reader
that falls behind what memory keeps reads the file instead, and nothing ever waits for a
reader: a slow or vanished client costs the others nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections import deque
from collections.abc import AsyncIterator, Callable

CHUNK = 1024 * 1024
# Pieces kept in memory behind the newest one, for readers (even once written).
WINDOW = 4 * 1024 * 1024
# How far the download may run ahead of the disk; beyond it, receiving waits for the writer.
# Small on purpose: memory held longer is memory the process must grow by, and running further
# ahead was no faster (bench/README.md).
AHEAD = 8 * 1024 * 1024
# When a reader is out of memory and ahead of the file it looks again this often.
RECHECK_SECONDS = 0.005
# Pieces go to the hashing thread in batches this large (one batch in flight).
HASH_BATCH = 1024 * 1024


def _hash(hasher: hashlib._Hash, pieces: list[bytes]) -> None:
    for piece in pieces:
        hasher.update(piece)  # releases the GIL: runs beside the event loop


class DownloadFailed(Exception):
    """The download this reader followed broke, or brought bytes that failed verification."""


class Relay:
    def __init__(self, size: int, algorithm: str | None) -> None:
        """`algorithm` None: the relay hashes nothing (whoever writes the bytes does)."""
        self.size = size
        self._hasher = hashlib.new(algorithm) if algorithm is not None else None
        self._batch: list[bytes] = []
        self._batched = 0
        self._hashing: asyncio.Future[None] | None = None
        self.received = 0
        self.written = 0
        self.verified = False
        self.error: BaseException | None = None
        self._pieces: deque[tuple[int, bytes]] = deque()
        self._changed = asyncio.Event()

    # -- the downloader ---------------------------------------------------------------
    async def publish(self, piece: bytes) -> None:
        """Add the next piece; waits while the disk is more than `AHEAD` behind."""
        while self.received - self.written > AHEAD:
            if self.error is not None:
                raise DownloadFailed(str(self.error))
            await self._changed.wait()
        if self.error is not None:
            raise DownloadFailed(str(self.error))
        self._pieces.append((self.received, piece))
        self.received += len(piece)
        self._wake()
        if self._hasher is None:
            return
        self._batch.append(piece)
        self._batched += len(piece)
        if self._batched >= HASH_BATCH:
            await self._hash_batch()

    async def _hash_batch(self) -> None:
        if self._hashing is not None:
            await self._hashing
            self._hashing = None
        if self._batch and self._hasher is not None:
            loop = asyncio.get_running_loop()
            self._hashing = loop.run_in_executor(None, _hash, self._hasher, self._batch)
            self._batch, self._batched = [], 0

    async def digest(self) -> str:
        """The digest of everything published (call once, after the last piece)."""
        assert self._hasher is not None, "a relay made to hash"
        await self._hash_batch()
        if self._hashing is not None:
            await self._hashing
            self._hashing = None
        return f"{self._hasher.name}:{self._hasher.hexdigest()}"

    def verify(self) -> None:
        """Every byte arrived and the digest matched: readers may take the last ones."""
        self.verified = True
        self._wake()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._pieces.clear()
        self._wake()

    async def unwritten(self) -> AsyncIterator[bytes]:
        """The pieces in order, for the blob store's writer; ends when all `size` are given.

        A piece counts as written once the next one is asked for (the writer has taken it)."""
        while self.written < self.size:
            piece = self._from_memory(self.written)
            if piece is None:
                if self.error is not None:
                    return
                await self._changed.wait()
                continue
            yield piece
            self.written += len(piece)
            self._forget()
            self._wake()

    def _forget(self) -> None:
        """Drop what is both written and more than WINDOW behind the newest piece."""
        while self._pieces:
            start, piece = self._pieces[0]
            if start + len(piece) > self.written or self.received - start <= WINDOW:
                return
            self._pieces.popleft()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # -- readers ----------------------------------------------------------------------
    def _from_memory(self, offset: int) -> bytes | None:
        for start, piece in self._pieces:
            if start <= offset < start + len(piece):
                return piece[offset - start :] if offset > start else piece
        return None

    async def read(self, opened: Callable[[], int | None]) -> AsyncIterator[bytes]:
        """The whole blob from the start; the last bytes only once it is verified.

        `opened` gives a readable descriptor of the file (the upload, or the blob once it is
        committed and the upload renamed), or None when it is not there."""
        fd: int | None = None
        offset = 0
        try:
            while offset < self.size:
                if self.error is not None:
                    raise DownloadFailed(str(self.error))
                piece = self._from_memory(offset)
                if piece is None and offset < self.written:
                    if fd is None:
                        fd = opened()
                    if fd is not None:
                        piece = os.pread(fd, min(CHUNK, self.written - offset), offset) or None
                if piece is None:
                    wait = RECHECK_SECONDS if offset < self.received else None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), wait)
                    continue
                if offset + len(piece) >= self.size:
                    while not self.verified:
                        if self.error is not None:
                            raise DownloadFailed(str(self.error))
                        await self._changed.wait()
                offset += len(piece)
                yield piece
        finally:
            if fd is not None:
                os.close(fd)
