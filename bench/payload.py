"""Blob contents made before any clock starts: views into one pool of random bytes.

A blob is a 32-byte header unique to it followed by the pool repeated up to its size, so each
blob has its own digest (no registry can skip storing it) while nothing is generated or copied
while a request is timed: the body is streamed as memoryview slices of the pool.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass

MiB = 1 << 20
HEADER = 32
_counter = itertools.count()


class Pool:
    def __init__(self, size: int):
        self.data = memoryview(os.urandom(max(size, MiB)))

    def blob(self, size: int) -> Blob:
        header = hashlib.sha256(f"{os.getpid()}-{next(_counter)}-{os.urandom(8).hex()}".encode())
        blob = Blob(self, header.digest()[:HEADER] if size >= HEADER else os.urandom(size), size)
        blob.digest = blob.compute_digest()
        return blob


@dataclass
class Blob:
    pool: Pool
    header: bytes
    size: int
    digest: str = ""

    def segments(
        self, start: int = 0, end: int | None = None, chunk: int = 4 * MiB
    ) -> Iterator[memoryview | bytes]:
        """The bytes [start, end) of this blob, in pieces of at most `chunk` bytes."""
        end = self.size if end is None else end
        pos = start
        head = len(self.header)
        pool = self.pool.data
        while pos < end:
            if pos < head:
                piece = self.header[pos : min(head, end)]
            else:
                offset = (pos - head) % len(pool)
                piece = pool[offset : offset + min(chunk, end - pos, len(pool) - offset)]
            pos += len(piece)
            yield piece

    def compute_digest(self) -> str:
        h = hashlib.sha256()
        for piece in self.segments(chunk=16 * MiB):
            h.update(piece)
        return "sha256:" + h.hexdigest()

    def tobytes(self) -> bytes:
        return b"".join(bytes(p) for p in self.segments())
