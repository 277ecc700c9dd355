"""A minimal HTTP/1.1 client on asyncio streams, for the many-small-requests benchmark.

httpx costs a few hundred microseconds of CPU a request; eight processes of it pushing small
images took most of the two cores the servers were meant to be compared on. This one costs a
few tens, so the figure is the servers' own.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class HTTPError(Exception):
    pass


class Connection:
    """One keep-alive connection; requests are sent one at a time."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.authority = f"{self.host}:{self.port}".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()

    def path_of(self, location: str) -> str:
        """A Location header as a request target (servers answer absolute or relative ones)."""
        if location.startswith(("http://", "https://")):
            parts = urlsplit(location)
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return location

    async def request(
        self, method: str, target: str, body: bytes = b"", content_type: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None and self.writer is not None, "open() first"
        head = [
            f"{method} {target} HTTP/1.1".encode(),
            b"Host: " + self.authority,
            b"Content-Length: " + str(len(body)).encode(),
        ]
        if content_type:
            head.append(b"Content-Type: " + content_type.encode())
        self.writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            content = b""
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                content += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
            content = content[:-2]
        elif method == "HEAD":
            content = b""
        else:
            content = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, content

    async def expect(
        self,
        status: int,
        method: str,
        target: str,
        body: bytes = b"",
        content_type: str | None = None,
    ) -> dict[str, str]:
        got, headers, content = await self.request(method, target, body, content_type)
        if got != status:
            raise HTTPError(f"{method} {target}: {got}, expected {status}: {content[:300]!r}")
        return headers
