"""Responses for blob bytes, streamed from the blob store; and answers whose headers were
built once (`Prebuilt`).

Not ASGI's `pathsend`: granian answers it with small reads, each a hop to a blocking thread,
which made large blob pulls clearly slower than the blob store's own reads from the page cache
on the event loop (figures in bench/README.md, "Figures behind design choices").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from starlette.types import Receive, Scope, Send

from dockyard.core.bounded_cache import BoundedCache
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.memory import BIG_TRANSFER, trim_soon

RawHeaders = tuple[tuple[bytes, bytes], ...]
# The headers of the answers pulls repeat all day, by what they depend on (a manifest's digest,
# media type and size; a blob's digest and size): each is built once, not per request. A
# digest's headers never change, so none goes stale; the bound keeps the memory small
# whatever clients ask for.
_HEADERS: BoundedCache[tuple[object, ...], RawHeaders] = BoundedCache(4096)


def prebuilt_headers(key: tuple[object, ...], build: Callable[[], dict[str, str]]) -> RawHeaders:
    """The headers `build` gives for `key`, encoded; built once while remembered."""
    found = _HEADERS.get(key)
    if found is None:
        found = encoded(build())
        _HEADERS.put(key, found)
    return found


def encoded(headers: dict[str, str]) -> RawHeaders:
    """As Starlette encodes headers."""
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


class Prebuilt:
    """A whole answer from its status, encoded headers and body (empty for HEAD)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: RawHeaders, body: bytes = b"") -> None:
        self.status = status
        self.headers = headers
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class BlobResponse:
    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        *,
        stream: Callable[[], AsyncIterator[bytes]] | None = None,
        head: bool = False,
    ) -> None:
        self.status = status
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.stream = stream
        self.head = head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": self.status, "headers": self.headers}
        if self.head:
            await send(start)
            await send({"type": "http.response.body", "body": b""})
            return
        assert self.stream is not None, "a blob response to GET needs a stream"
        chunks = self.stream()
        try:
            first = await anext(chunks, b"")
        except FileNotFoundError:
            # The bytes went away after the blob was looked up (a sweep moves them before it
            # drops their records, and may be cut short): a missing blob, answered as one.
            digest = dict(self.headers).get(b"docker-content-digest", b"").decode()
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, detail={"digest": digest}) from None
        await send(start)
        sent = len(first)
        if first:
            await send({"type": "http.response.body", "body": first, "more_body": True})
        async for chunk in chunks:
            sent += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        if sent >= BIG_TRANSFER:  # once the server has written its last buffers
            trim_soon()
