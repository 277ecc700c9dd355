"""A blob GET whose answer has arrived and whose body is still unread (`RegistryClient.get_blob`).

For a caller that needs the size before the bytes (a cache announcing a download to the
clients waiting for it) without asking the registry twice: `size` is the answer's
Content-Length, which the body is held to (a body that ends early is an interrupted transfer;
bytes past it are never read). Nothing here checks the digest: the caller hashes what it keeps.

A large body is read straight from the connection once the HTTP parser has handed over what
it had buffered: the parser copies every byte three times on its way through, which was most
of what a cold pull through the cache cost beyond the kernel's own copies and the hash
(bench/README.md). The connection is then closed, not reused: the parser never saw the end.
On a plain TCP connection of the asyncio backend the rest is read by a thread, from a
duplicate of the connection's socket, in pieces of `THREAD_READ`, the next one read while
the last is handed on: read through the event loop's transport, every piece waited for a
turn of the loop (and two changes of its poller) before the next could be asked for, which
on a busy machine left a cold pull through the cache waiting on itself (bench/README.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import httpcore
import httpx

from dockyard.client.errors import ConnectionFailed, TransferInterrupted
from dockyard.client.transport import translate_error

# Bodies at least this large (past the parser's first piece) are read from the connection.
DIRECT_FROM = 4 * 1024 * 1024
# The most one read from the connection asks for.
READ_BYTES = 1024 * 1024
# What a reading thread gathers from the socket before it hands a piece to the event loop:
# small, so that the disk and the clients get each piece while the next is read (pieces of
# 1-4 MiB left each stage waiting for the one before it; bench/README.md).
THREAD_READ = 128 * 1024
# Threads reading bodies straight from sockets, one per body being read (made when first
# needed, in the process that reads): they block on the network, so they are kept apart
# from the default executor, whose threads write and hash what they bring.
_READERS = 32
_pool: ThreadPoolExecutor | None = None


class BlobBody:
    def __init__(self, response: httpx.Response, host: str) -> None:
        self._response = response
        self._host = host
        length = response.headers.get("Content-Length")
        self.size: int | None = int(length) if length and length.isdigit() else None

    async def chunks(self, at_least: int) -> AsyncIterator[bytes]:
        """The body in pieces of at least `at_least` bytes (the first and the last may be
        shorter: the first comes as soon as it arrives). The connection hands over a few
        hundred KiB at a time; whoever follows the bytes (a hash, a file, other clients) then
        does its per-piece work a few times fewer, for one copy."""
        held: list[bytes] = []
        count = 0
        received = 0
        parsed = cast(AsyncGenerator[bytes, None], self._response.aiter_raw())
        try:
            async for piece in parsed:
                if not received:
                    received = len(piece)
                    yield piece
                    direct = self._direct()
                    if direct is not None:
                        async for big in _gather(direct, at_least):
                            yield big
                        return
                    continue
                received += len(piece)
                held.append(piece)
                count += len(piece)
                if count >= at_least:
                    yield held[0] if len(held) == 1 else b"".join(held)
                    held, count = [], 0
        except httpx.HTTPError as exc:
            raise translate_error(exc, self._host) from None
        finally:
            await parsed.aclose()
        if held:
            yield b"".join(held)

    def _direct(self) -> AsyncIterator[bytes] | None:
        """The rest of the body read from the connection itself, when that is worth it and
        safe: HTTP/1.1, an announced length, and nothing of the body left in the parser (its
        first piece took all it held)."""
        response = self._response
        stream: Any = response.extensions.get("network_stream")
        if (
            self.size is None
            or response.http_version != "HTTP/1.1"
            or "transfer-encoding" in response.headers
            or stream is None
            or not callable(getattr(stream, "read", None))
        ):
            return None
        remaining = self.size - response.num_bytes_downloaded
        if remaining < DIRECT_FROM:
            return None
        timeout = (response.request.extensions.get("timeout") or {}).get("read")
        taken = _take_socket(stream)
        if taken is not None:
            buffered, sock = taken
            return _read_in_thread(sock, buffered, remaining, timeout, self._host)
        return _read(stream, remaining, timeout, self._host)

    async def aclose(self) -> None:
        await self._response.aclose()


async def _read(
    stream: Any, remaining: int, timeout: float | None, host: str
) -> AsyncIterator[bytes]:
    """`remaining` bytes from the connection, never one more."""
    while remaining > 0:
        try:
            piece = await stream.read(min(READ_BYTES, remaining), timeout=timeout)
        except httpcore.TimeoutException:
            raise ConnectionFailed(
                f"{host} did not answer in time (the blob's body stalled); try again later"
            ) from None
        except httpcore.NetworkError as exc:
            raise TransferInterrupted(
                f"the connection to {host} broke ({exc}); try again"
            ) from None
        if not piece:
            raise TransferInterrupted(
                f"the connection to {host} broke: {remaining} bytes of the blob never came"
            )
        remaining -= len(piece)
        yield piece


def _take_socket(stream: Any) -> tuple[bytes, socket.socket] | None:
    """What the asyncio backend's stream of a plain TCP connection already received and a
    duplicate of its socket, for a thread to read the rest from; None for any other stream
    (TLS, another backend), read through the stream as before.

    Safe because the stream reads only while it is asked to: its transport is paused between
    reads, and never asked again, as the connection is closed after the body."""
    inner = getattr(stream, "_stream", None)
    protocol = getattr(inner, "_protocol", None)
    transport = getattr(inner, "_transport", None)
    queue = getattr(protocol, "read_queue", None)
    if (
        transport is None
        or not isinstance(queue, deque)
        or getattr(protocol, "exception", None) is not None
        or getattr(protocol, "is_at_eof", True)
        or transport.is_closing()
        or transport.is_reading()
    ):
        return None
    raw = transport.get_extra_info("socket")
    if raw is None or raw.type != socket.SOCK_STREAM:
        return None
    try:
        sock = socket.socket(raw.family, raw.type, raw.proto, os.dup(raw.fileno()))
    except OSError:
        return None
    buffered = b"".join(queue)
    queue.clear()
    return buffered, sock


def _fill(sock: socket.socket, want: int) -> bytes:
    """`want` bytes from the socket (in a reading thread); fewer only when it is shut down."""
    buffer = bytearray(want)
    view = memoryview(buffer)
    got = 0
    while got < want:
        count = sock.recv_into(view[got:])
        if not count:
            break
        got += count
    view.release()
    return bytes(buffer) if got == want else bytes(buffer[:got])


async def _read_in_thread(
    sock: socket.socket, buffered: bytes, remaining: int, timeout: float | None, host: str
) -> AsyncIterator[bytes]:
    """`remaining` bytes: first what the stream had received, then the rest from `sock` by a
    reading thread, the next piece read while the last one is handed on."""
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(_READERS, thread_name_prefix="dockyard-body")
    loop = asyncio.get_running_loop()
    sock.settimeout(timeout)
    pending: asyncio.Future[bytes] | None = None
    try:
        if buffered:
            buffered = buffered[:remaining]
            remaining -= len(buffered)
            yield buffered
        if remaining > 0:
            pending = loop.run_in_executor(_pool, _fill, sock, min(THREAD_READ, remaining))
        while pending is not None:
            try:
                piece = await pending
            except TimeoutError:
                raise ConnectionFailed(
                    f"{host} did not answer in time (the blob's body stalled); try again later"
                ) from None
            except OSError as exc:
                raise TransferInterrupted(
                    f"the connection to {host} broke ({exc}); try again"
                ) from None
            pending = None
            remaining -= len(piece)
            if remaining > 0:
                if len(piece) < min(THREAD_READ, remaining + len(piece)):
                    raise TransferInterrupted(
                        f"the connection to {host} broke: {remaining} bytes of the blob never came"
                    )
                pending = loop.run_in_executor(_pool, _fill, sock, min(THREAD_READ, remaining))
            yield piece
    finally:
        if pending is None:
            sock.close()
        else:
            # Wake the thread still reading (its read ends at once) and close the socket
            # once it has let go of it.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            pending.add_done_callback(lambda read: _close(sock, read))


def _close(sock: socket.socket, read: asyncio.Future[bytes]) -> None:
    sock.close()
    if not read.cancelled():
        read.exception()  # looked at: a read cut short by the shutdown is no news


async def _gather(pieces: AsyncIterator[bytes], at_least: int) -> AsyncIterator[bytes]:
    held: list[bytes] = []
    count = 0
    async for piece in pieces:
        held.append(piece)
        count += len(piece)
        if count >= at_least:
            yield held[0] if len(held) == 1 else b"".join(held)
            held, count = [], 0
    if held:
        yield b"".join(held)
