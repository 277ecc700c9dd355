"""Reading request bodies: streamed with an idle timeout, or whole with a size cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.requests import Request

from dockyard.api.errors import ClientDisconnected
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.memory import BIG_TRANSFER, trim_soon


def has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    raw = raw.strip()
    # ASCII and short: isdigit() takes "²", which int() refuses, as it does 4,300 digits.
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        raise RegistryError(ErrorCode.SIZE_INVALID, "malformed Content-Length")
    return int(raw)


async def stream_body(request: Request, idle_timeout: float) -> AsyncIterator[bytes]:
    """Yield body chunks; a client that stalls longer than `idle_timeout` is cut off (408)."""
    receive = request.receive
    received = 0
    while True:
        try:
            async with asyncio.timeout(idle_timeout):
                message = await receive()
        except TimeoutError:
            raise RegistryError(
                ErrorCode.BODY_TIMEOUT,
                f"no request body data for {idle_timeout:g}s; upload abandoned",
            ) from None
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        if chunk:
            received += len(chunk)
            yield chunk
        if not message.get("more_body", False):
            if received >= BIG_TRANSFER:  # once its last buffers have been written
                trim_soon()
            return


async def read_body(
    request: Request, limit: int, idle_timeout: float, error: RegistryError
) -> bytes:
    """The whole body, refusing (with `error`) anything larger than `limit` bytes."""
    declared = content_length(request)
    if declared is not None and declared > limit:
        raise error
    parts: list[bytes] = []
    total = 0
    async for chunk in stream_body(request, idle_timeout):
        total += len(chunk)
        if total > limit:
            raise error
        parts.append(chunk)
    return b"".join(parts)
