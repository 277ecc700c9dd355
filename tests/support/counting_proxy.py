"""A TCP proxy that understands just enough HTTP/1.1 to count requests and shape responses.

Put it between a registry and its upstream to see exactly which requests reach the upstream:
* `requests`: every request that passed, in order, as `Seen(method, path, ...)`, with the time
  (`time.monotonic()` of the test process) its response started and finished being relayed;
* `throttle`: a rule (`Rule(method, path_contains)`) plus `rate` in bytes/second: the response
  body of a matching request is relayed no faster than that, so a transfer takes a while;
* `cut`: a rule plus `cut_after` bytes: the response body of a matching request is cut after that
  many bytes and both connections are closed, as a dropped network would (`cuts` times);
* `hang`: while set, requests are read and counted but never forwarded nor answered, as an
  upstream that accepts connections and then times out;
* `connections`: how many TCP connections were accepted (a stopped proxy accepts none).
Requests and responses are parsed (Content-Length, chunked, or until close) so keep-alive
connections carrying many requests are counted and shaped one request at a time.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from tests.support.server import free_port


@dataclass(frozen=True)
class Rule:
    method: str
    path_contains: str

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and self.path_contains in path


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    status: int | None = None
    started: float | None = None  # first response byte relayed
    finished: float | None = None  # last response byte relayed
    body_bytes: int = 0
    cut: bool = False


class _Closed(Exception):
    pass


class _Reader:
    """Buffered reads from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise _Closed
        self.buffer += data

    def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self.fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self.fill()
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def some(self, limit: int) -> bytes:
        if not self.buffer:
            self.fill()
        piece, self.buffer = self.buffer[:limit], self.buffer[limit:]
        return piece


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
    }
    return lines[0], headers


@dataclass
class CountingProxy:
    upstream_port: int
    port: int = 0
    rate: float | None = None  # bytes per second for throttled response bodies
    throttle: Rule | None = None
    cut: Rule | None = None
    cut_after: int = 0
    cuts: int = 1
    cuts_done: int = 0
    connections: int = 0
    hang: bool = False
    requests: list[Seen] = field(default_factory=list)
    _listener: socket.socket | None = None
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: threading.Event = field(default_factory=threading.Event)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> CountingProxy:
        self.port = self.port or free_port()
        self._stopped.clear()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listener (new connections are refused) and every open connection."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        self._stopped.set()
        with self._lock:
            for sock in self._sockets:
                self._close(sock)
            self._sockets.clear()

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- queries ----------------------------------------------------------------------------
    def matching(self, method: str, path_contains: str = "") -> list[Seen]:
        with self._lock:
            return [
                s for s in self.requests if Rule(method, path_contains).matches(s.method, s.path)
            ]

    def paths(self) -> list[str]:
        with self._lock:
            return [f"{s.method} {s.path}" for s in self.requests]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- relaying ---------------------------------------------------------------------------
    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _close(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            self._close(client)
            return
        with self._lock:
            self._sockets += [client, upstream]
        pending: deque[Seen] = deque()
        ready = threading.Condition()
        responses = threading.Thread(
            target=self._responses, args=(upstream, client, pending, ready), daemon=True
        )
        responses.start()
        try:
            self._requests(client, upstream, pending, ready)
        except (OSError, _Closed):
            pass
        finally:
            # The client is gone (or the response side closed both): nothing more to relay.
            self._close(client)
            self._close(upstream)

    def _requests(
        self,
        client: socket.socket,
        upstream: socket.socket,
        pending: deque[Seen],
        ready: threading.Condition,
    ) -> None:
        reader = _Reader(client)
        while True:
            head = reader.head()
            request_line, headers = _parse_head(head)
            method, path = request_line.split(" ")[:2]
            seen = Seen(method, path, headers)
            with self._lock:
                self.requests.append(seen)
            if self.hang:
                self._stopped.wait()  # never answered; released (and closed) by stop()
                return
            with ready:
                pending.append(seen)
                ready.notify()
            upstream.sendall(head)
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._relay_chunked(reader, upstream)
            else:
                self._relay_length(reader, upstream, int(headers.get("content-length") or 0))

    def _responses(
        self,
        upstream: socket.socket,
        client: socket.socket,
        pending: deque[Seen],
        ready: threading.Condition,
    ) -> None:
        reader = _Reader(upstream)
        try:
            while True:
                head = reader.head()
                status_line, headers = _parse_head(head)
                status = int(status_line.split(" ")[1])
                if 100 <= status < 200:
                    client.sendall(head)
                    continue
                with ready:
                    while not pending:
                        ready.wait()
                    seen = pending.popleft()
                seen.status = status
                seen.started = time.monotonic()
                client.sendall(head)
                shape = self._shape_for(seen)
                if seen.method == "HEAD" or status in (204, 304):
                    pass
                elif "chunked" in headers.get("transfer-encoding", "").lower():
                    self._relay_chunked(reader, client)
                elif "content-length" in headers:
                    seen.body_bytes = self._relay_length(
                        reader, client, int(headers["content-length"]), shape, seen
                    )
                else:
                    seen.body_bytes = self._relay_length(reader, client, None, shape, seen)
                seen.finished = time.monotonic()
                if seen.cut:
                    raise _Closed
        except (OSError, _Closed):
            pass
        finally:
            self._close(client)
            self._close(upstream)

    def _shape_for(self, seen: Seen) -> tuple[float | None, int | None]:
        """(rate, cut_after) for this response."""
        rate = (
            self.rate if self.throttle and self.throttle.matches(seen.method, seen.path) else None
        )
        cut = None
        with self._lock:
            if self.cut and self.cut.matches(seen.method, seen.path) and self.cuts_done < self.cuts:
                self.cuts_done += 1
                cut = self.cut_after
        return rate, cut

    def _relay_length(
        self,
        reader: _Reader,
        sink: socket.socket,
        length: int | None,
        shape: tuple[float | None, int | None] = (None, None),
        seen: Seen | None = None,
    ) -> int:
        rate, cut = shape
        sent = 0
        began = time.monotonic()
        while length is None or sent < length:
            want = 65536 if length is None else min(65536, length - sent)
            if cut is not None:
                want = min(want, cut - sent)
            if want <= 0:
                break
            try:
                piece = reader.some(want)
            except _Closed:
                if length is None:
                    break
                raise
            sink.sendall(piece)
            sent += len(piece)
            if rate:
                # Sleep until the bytes sent so far fit the rate.
                ahead = sent / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
        if cut is not None and (length is None or sent < length) and seen is not None:
            seen.cut = True
        return sent

    def _relay_chunked(self, reader: _Reader, sink: socket.socket) -> None:
        while True:
            size_line = reader.line()
            sink.sendall(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                # Trailers, then the empty line.
                while True:
                    line = reader.line()
                    sink.sendall(line)
                    if line == b"\r\n":
                        return
            remaining = size + 2  # the chunk and its CRLF
            while remaining:
                piece = reader.some(remaining)
                sink.sendall(piece)
                remaining -= len(piece)
