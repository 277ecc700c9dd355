"""Many idle keep-alive connections held open against a server while something else is timed.

Each connection sends one request, reads the whole answer and then stays open sending nothing,
as a client between pulls does (docker keeps its connections to a registry in a pool). They
live on an event loop in a thread of their own, so the caller can run wrk meanwhile; a raw
HTTP/1.1 client (`bench.rawhttp`) keeps their own cost to a few tens of microseconds each.
"""

from __future__ import annotations

import asyncio
import resource
import threading
from concurrent.futures import Future

from bench import rawhttp


def raise_open_file_limit(needed: int) -> None:
    """Raise this process's soft limit on open files to at least `needed` (up to the hard
    limit): every held connection is a descriptor here too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        wanted = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class IdleConnections:
    """`count` connections to `base_url`, each after one GET of `target`, held until exit.

    Opened `opening_at_once` at a time, so the listen backlog is not what is measured. Every
    answer must be 2xx, or 401 from a registry with accounts: served, not refused at the door
    (a 429 or a 5xx fails the run)."""

    def __init__(self, base_url: str, count: int, target: str, opening_at_once: int = 64):
        self.base_url = base_url
        self.count = count
        self.target = target
        self.opening_at_once = max(1, opening_at_once)
        self.connections: list[rawhttp.Connection] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="idle", daemon=True)

    def _call(self, coro: object, timeout: float) -> object:
        future: Future[object] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return future.result(timeout)

    async def _open_all(self) -> None:
        gate = asyncio.Semaphore(self.opening_at_once)

        async def open_one() -> None:
            async with gate:
                conn = rawhttp.Connection(self.base_url)
                self.connections.append(conn)
                await conn.open()
                status, _, _ = await conn.request("GET", self.target)
                if not (200 <= status < 300 or status == 401):
                    raise rawhttp.HTTPError(f"GET {self.target} answered {status}")

        await asyncio.gather(*(open_one() for _ in range(self.count)))

    async def _still_open(self) -> int:
        await asyncio.sleep(0)  # lets the loop read any end-of-stream already arrived
        return sum(
            1
            for conn in self.connections
            if conn.reader is not None
            and not conn.reader.at_eof()
            and conn.writer is not None
            and not conn.writer.is_closing()
        )

    async def _close_all(self) -> None:
        for conn in self.connections:
            if conn.writer is not None:
                conn.writer.close()
        await asyncio.gather(
            *(c.writer.wait_closed() for c in self.connections if c.writer is not None),
            return_exceptions=True,
        )

    def still_open(self) -> int:
        """How many of the connections the server has not closed."""
        return int(self._call(self._still_open(), 30))  # type: ignore[call-overload]

    def __enter__(self) -> IdleConnections:
        raise_open_file_limit(self.count + 1024)
        self._thread.start()
        try:
            self._call(self._open_all(), 120 + self.count / 10)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._call(self._close_all(), 60)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
