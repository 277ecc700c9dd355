"""A minimal HTTP/1.1 client: on asyncio streams for the many-small-requests benchmark
(`Connection`), and on a blocking socket for the listings (`Listing`).

httpx costs a few hundred microseconds of CPU a request; eight processes of it pushing small
images took most of the two cores the servers were meant to be compared on, and one listing
page cost the benchmark's httpx client as long as the server's whole round trip of a trivial
`/v2/`. These cost a few tens, so the figure is the servers' own.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
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
        return _path_of(location)

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
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")  # no trailers: the last CRLF
                    break
                parts.append((await self.reader.readexactly(size + 2))[:-2])
            content = b"".join(parts)
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


_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class Listing:
    """One blocking keep-alive connection that GETs a listing and follows its `Link: <...>;
    rel="next"` to the end, as `bench.ops.Client.list_pages` does over httpx; the same bytes
    go out to every server (GET, Host, nothing else), and a request's time runs from its first
    byte sent to its body's last byte read."""

    def __init__(self, base_url: str, timeout: float = 600.0):
        parts = urlsplit(base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.host = f"{host}:{port}".encode()
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, target: str) -> tuple[int, str | None, bytes]:
        """GET `target` (a path and query): the status, the Link header, the body."""
        self.sock.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target.encode(), self.host))
        status = int(self.file.readline().split(b" ", 2)[1])
        length, chunked, link = 0, False, None
        while (line := self.file.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = value.strip().lower() == b"chunked"
            elif name == b"link":
                link = value.strip().decode("latin-1")
        if not chunked:
            return status, link, self.file.read(length)
        parts = []
        while size := int(self.file.readline().split(b";")[0], 16):
            parts.append(self.file.read(size))
            self.file.readline()  # the CRLF after the chunk
        self.file.readline()  # no trailers: the last CRLF
        return status, link, b"".join(parts)

    def pages(self, target: str, max_pages: int, times: list[float] | None = None) -> list[bytes]:
        """GET `target`, then every next page its Link names: the bodies, unparsed. With
        `times`, each request's seconds are appended to it. A status other than 200 or more
        than `max_pages` pages after the first raise HTTPError."""
        bodies = []
        for _ in range(max_pages + 1):
            started = time.perf_counter()
            status, link, body = self.get(target)
            if times is not None:
                times.append(time.perf_counter() - started)
            if status != 200:
                raise HTTPError(f"GET {target}: {status}, expected 200: {body[:300]!r}")
            bodies.append(body)
            found = _NEXT.search(link) if link else None
            if found is None:
                return bodies
            target = _path_of(found.group(1))
        raise HTTPError(f"{target}: still a Link after {max_pages} pages")


def _path_of(location: str) -> str:
    """A Location or Link target as a request target: servers write it absolute or relative."""
    if location.startswith(("http://", "https://")):
        parts = urlsplit(location)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return location
