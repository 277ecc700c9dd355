"""A blob GET whose answer has arrived and whose body is still unread (`RegistryClient.get_blob`).

For a caller that needs the size before the bytes (a cache announcing a download to the
clients waiting for it) without asking the registry twice: `size` is the answer's
Content-Length, which the HTTP layer holds the body to (a body that ends early is an
interrupted transfer). Nothing here checks the digest: the caller hashes what it keeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from dockyard.client.transport import translate_error


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
        first = True
        try:
            async for piece in self._response.aiter_raw():
                held.append(piece)
                count += len(piece)
                if count >= at_least or first:
                    first = False
                    yield held[0] if len(held) == 1 else b"".join(held)
                    held, count = [], 0
        except httpx.HTTPError as exc:
            raise translate_error(exc, self._host) from None
        if held:
            yield b"".join(held)

    async def aclose(self) -> None:
        await self._response.aclose()
