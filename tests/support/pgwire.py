"""A loopback relay in front of PostgreSQL that counts what crosses it, message by message.

Round trips are counted on the wire, not timed: every Sync ('S'), simple Query ('Q') and Flush
('H') a client sends asks the server to answer before the client goes on, so each is one round
trip; every DataRow ('D') the server sends is one row the client decodes. The relay parses only
the framing of PostgreSQL's protocol (a type byte and a length), which is why the server must
refuse TLS (the tests' clusters do): SSLRequest's one-byte answer is passed through as it is.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from tests.support.server import free_port

# Requests that come before the startup message, with no type byte; the server answers an
# SSLRequest or GSSENCRequest with one byte ('N': go on in plain text).
_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_CANCEL_REQUEST = 80877102
# What a client sends to have the server answer before it goes on.
ROUND_TRIP_MESSAGES = frozenset(b"SQH")


@dataclass
class WireCounter:
    """`url(database_url)` names the same database through the relay; `round_trips` and
    `rows` count from the last `reset`. Runs its own event loop on a thread, so the clients
    under test may use any loop."""

    upstream_port: int
    port: int = field(default_factory=free_port)
    sent: Counter[int] = field(default_factory=Counter)  # client's messages by type byte
    received: Counter[int] = field(default_factory=Counter)  # server's messages by type byte
    statements: list[str] = field(default_factory=list)  # texts of Parse and Query messages
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _started: threading.Event = field(default_factory=threading.Event)
    _connections: set[asyncio.StreamWriter] = field(default_factory=set)
    _relays: set[asyncio.Task[None]] = field(default_factory=set)
    _server: asyncio.Server | None = None

    def url(self, database_url: str) -> str:
        parts = urlsplit(database_url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{self.port}" if userinfo else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def round_trips(self) -> int:
        with self._lock:
            return sum(self.sent[kind] for kind in ROUND_TRIP_MESSAGES)

    @property
    def rows(self) -> int:
        with self._lock:
            return self.received[ord("D")]

    def reset(self) -> None:
        with self._lock:
            self.sent.clear()
            self.received.clear()
            self.statements.clear()

    def start(self) -> WireCounter:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._started.wait(60):
            raise RuntimeError("the wire counter did not start")
        return self

    def stop(self) -> None:
        """Closes every relayed connection (their clients see the server hang up); again, it
        does nothing."""
        loop, self._loop = self._loop, None
        if loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(60)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        for task in list(self._relays):
            task.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)

    def drop_connections(self) -> None:
        """Hang up every connection relayed so far, as a restarted server would."""
        loop = self._loop
        assert loop is not None, "the counter is stopped"
        done = threading.Event()

        def close_all() -> None:
            for writer in list(self._connections):
                writer.transport.abort()
            done.set()

        loop.call_soon_threadsafe(close_all)
        done.wait(60)

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._server = loop.run_until_complete(
            asyncio.start_server(self._relay, "127.0.0.1", self.port)
        )
        self._started.set()
        loop.run_forever()
        loop.close()

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_out.transport.abort()
            return
        self._connections.update((client_out, server_out))
        answers_one_byte = asyncio.Event()
        directions = [
            asyncio.ensure_future(self._from_client(client_in, server_out, answers_one_byte)),
            asyncio.ensure_future(self._from_server(server_in, client_out, answers_one_byte)),
        ]
        try:
            # Either side hanging up ends the connection for both.
            await asyncio.wait(directions, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for writer in (client_out, server_out):
                self._connections.discard(writer)
                writer.transport.abort()
            for direction in directions:
                direction.cancel()
            # What ended them (a reset, a closed stream) is the hang-up itself.
            await asyncio.gather(*directions, return_exceptions=True)

    async def _from_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, one_byte: asyncio.Event
    ) -> None:
        # Untyped requests first: (SSL or GSSENC request,)* then the startup message.
        while True:
            head = await reader.readexactly(8)
            length, code = struct.unpack("!ii", head)
            body = await reader.readexactly(length - 8)
            if code in (_SSL_REQUEST, _GSSENC_REQUEST):
                one_byte.set()
            writer.write(head + body)
            await writer.drain()
            if code == _CANCEL_REQUEST:
                return
            if code not in (_SSL_REQUEST, _GSSENC_REQUEST):
                break
        while True:
            kind, body = await _message(reader)
            with self._lock:
                self.sent[kind] += 1
                if kind == ord("P"):  # Parse: name NUL, query NUL, ...
                    self.statements.append(body.split(b"\0")[1].decode(errors="replace"))
                elif kind == ord("Q"):
                    self.statements.append(body.rstrip(b"\0").decode(errors="replace"))
            writer.write(bytes([kind]) + struct.pack("!i", len(body) + 4) + body)
            await writer.drain()
            if kind == ord("X"):  # Terminate
                return

    async def _from_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, one_byte: asyncio.Event
    ) -> None:
        while True:
            first = await reader.readexactly(1)
            if one_byte.is_set() and first in (b"N", b"G", b"S"):
                # The answer to an SSL/GSSENC request: plain text from here on ('S' would
                # start TLS, which these clusters never offer).
                one_byte.clear()
                writer.write(first)
                await writer.drain()
                continue
            (length,) = struct.unpack("!i", await reader.readexactly(4))
            body = await reader.readexactly(length - 4)
            with self._lock:
                self.received[first[0]] += 1
            writer.write(first + struct.pack("!i", length) + body)
            await writer.drain()


async def _message(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    kind = (await reader.readexactly(1))[0]
    (length,) = struct.unpack("!i", await reader.readexactly(4))
    return kind, await reader.readexactly(length - 4)
