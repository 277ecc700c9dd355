"""A blob GET whose answer has arrived and whose body is still unread (`RegistryClient.get_blob`).

For a caller that needs the size before the bytes (a cache announcing a download to the
clients waiting for it) without asking the registry twice: `size` is the answer's
Content-Length, which the body is held to (a body that ends early is an interrupted transfer;
bytes past it are never read). Nothing here checks the digest: the caller hashes what it keeps.

A large body is read straight from the connection once the HTTP parser has handed over what
it had buffered: the parser copies every byte three times on its way through, which was most
of what a cold pull through the cache cost beyond the kernel's own copies and the hash
(bench/README.md). The connection is then closed, not reused: the parser never saw the end.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import httpcore
import httpx

from dockyard.client.errors import ConnectionFailed, TransferInterrupted
from dockyard.client.transport import translate_error

# Bodies at least this large (past the parser's first piece) are read from the connection.
DIRECT_FROM = 4 * 1024 * 1024
# The most one read from the connection asks for.
READ_BYTES = 1024 * 1024


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
