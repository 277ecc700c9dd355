"""`RegistryClient.get_blob`: the size before the bytes, the body in large pieces, held to its
Content-Length, and a large body read straight from the connection (which is then closed)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dockyard.client.blob_body import DIRECT_FROM, THREAD_READ
from dockyard.client.errors import TransferInterrupted
from dockyard.client.registry import RegistryClient

MiB = 1024 * 1024


@dataclass
class Blobs:
    """Serves `bodies[digest]` for blob GETs, announcing `lengths[digest]` when given."""

    bodies: dict[str, bytes] = field(default_factory=dict)
    lengths: dict[str, int] = field(default_factory=dict)
    connections: set[tuple[str, int]] = field(default_factory=set)

    def add(self, data: bytes, length: int | None = None) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        self.bodies[digest] = data
        if length is not None:
            self.lengths[digest] = length
        return digest


@contextmanager
def serving(blobs: Blobs) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            blobs.connections.add(self.client_address)
            digest = self.path.rsplit("/", 1)[-1]
            body = blobs.bodies.get(digest)
            if "/blobs/" not in self.path or body is None:
                self.send_response(404 if "/blobs/" in self.path else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                return
            length = blobs.lengths.get(digest, len(body))
            self.send_response(200)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)
            if length > len(body):
                self.close_connection = True

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def read_all(client: RegistryClient, digest: str) -> tuple[int | None, list[bytes], int]:
    """The announced size, the pieces, and what the HTTP parser itself counted."""
    body = await client.get_blob("library/app", digest)
    assert body is not None
    try:
        pieces = [piece async for piece in body.chunks(MiB)]
        return body.size, pieces, body._response.num_bytes_downloaded
    finally:
        await body.aclose()


def run(blobs: Blobs, *digests: str) -> list[tuple[int | None, list[bytes], int]]:
    async def main() -> list[tuple[int | None, list[bytes], int]]:
        with serving(blobs) as host:
            async with RegistryClient(host, scheme="http") as client:
                return [await read_all(client, digest) for digest in digests]

    return asyncio.run(main())


def test_a_large_body_comes_whole_in_large_pieces_read_past_the_parser() -> None:
    blobs = Blobs()
    data = os.urandom(DIRECT_FROM + 3 * MiB + 17)
    digest = blobs.add(data)
    [(size, pieces, parsed)] = run(blobs, digest)
    assert size == len(data) and b"".join(pieces) == data
    # The first piece as it came, then pieces of at least 1 MiB (the last may be shorter).
    assert all(len(piece) >= MiB for piece in pieces[1:-1]), [len(p) for p in pieces]
    # Only the first piece went through the HTTP parser: the rest came from the connection.
    assert parsed == len(pieces[0]) < len(data)


def test_a_large_body_is_held_to_its_content_length_and_its_connection_not_reused() -> None:
    blobs = Blobs()
    small = os.urandom(MiB)
    large = os.urandom(DIRECT_FROM + 2 * MiB)
    # Announced one byte short of what is written: the byte past it is never read as the blob.
    short = blobs.add(large, len(large) - 1)
    first, second = blobs.add(small), blobs.add(os.urandom(MiB // 2))
    results = run(blobs, first, second, short, first)
    assert b"".join(results[0][1]) == small and len(b"".join(results[1][1])) == MiB // 2
    assert b"".join(results[2][1]) == large[:-1]
    assert b"".join(results[3][1]) == small
    # Small bodies through the parser keep their connection; the large one's is closed after
    # it, since the parser never saw its end: the last blob comes on a second connection.
    assert len(blobs.connections) == 2


def test_a_large_body_that_ends_early_is_an_interrupted_transfer() -> None:
    blobs = Blobs()
    data = os.urandom(DIRECT_FROM + 2 * MiB)
    digest = blobs.add(data, len(data) + MiB)  # announces more, then hangs up
    with pytest.raises(TransferInterrupted):
        run(blobs, digest)


def test_a_large_body_past_the_parser_is_not_read_through_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the parser's first piece a large body is read by a thread and handed over a
    piece of THREAD_READ at a time, not one wake-up of the event loop's stream per few
    hundred KiB it received."""
    from anyio._backends._asyncio import SocketStream

    receives = 0
    receive = SocketStream.receive

    async def counted(self: Any, max_bytes: int = 65536) -> bytes:
        nonlocal receives
        receives += 1
        return await receive(self, max_bytes)

    monkeypatch.setattr(SocketStream, "receive", counted)
    blobs = Blobs()
    data = os.urandom(DIRECT_FROM + 12 * MiB + 5)
    digest = blobs.add(data)

    async def main() -> list[bytes]:
        with serving(blobs) as host:
            async with RegistryClient(host, scheme="http") as client:
                body = await client.get_blob("library/app", digest)
                assert body is not None
                try:
                    return [piece async for piece in body.chunks(THREAD_READ)]
                finally:
                    await body.aclose()

    pieces = asyncio.run(main())
    assert b"".join(pieces) == data
    # The headers and the parser's first piece (a read or two each), nothing after them.
    assert receives <= 4, receives
    # Handed on in pieces of THREAD_READ (the first, and the last, may be shorter).
    assert all(len(piece) == THREAD_READ for piece in pieces[1:-1]), [len(p) for p in pieces]


def test_a_large_body_left_unread_stops_its_reading_thread() -> None:
    """A reader that goes away mid-body (a cancelled download) leaves no thread reading."""
    blobs = Blobs()
    data = os.urandom(DIRECT_FROM + 12 * MiB)
    digest = blobs.add(data, len(data) + MiB)  # the server then waits: the read would hang

    async def main() -> None:
        with serving(blobs) as host:
            async with RegistryClient(host, scheme="http") as client:
                body = await client.get_blob("library/app", digest)
                assert body is not None
                chunks = body.chunks(MiB)
                got = 0
                async for piece in chunks:
                    got += len(piece)
                    if got >= DIRECT_FROM + 4 * MiB:
                        break
                await chunks.aclose()  # type: ignore[attr-defined]
                await body.aclose()
                for _ in range(200):
                    if not any(
                        t.name.startswith("dockyard-body") and _reading(t)
                        for t in threading.enumerate()
                    ):
                        return
                    await asyncio.sleep(0.01)
                raise AssertionError("a reading thread is still reading")

    asyncio.run(main())


def _reading(thread: threading.Thread) -> bool:
    """Whether the pool thread is inside a read (and not idle, waiting for work)."""
    import sys
    import traceback

    frame = sys._current_frames().get(thread.ident or 0)
    return frame is not None and any(f.name == "_fill" for f in traceback.extract_stack(frame))
