"""A TCP proxy in front of a registry that misbehaves on purpose, for resume and retry tests.

It reads just enough HTTP/1.1 (request line, headers, Content-Length) to know where each
request's body is, and can
* cut the connection after `cut_after` bytes of the body of a request whose method is
  `cut_method` (`cuts` times), as a dropped network would mid-upload;
* answer the next requests itself with canned statuses (`inject`: e.g. 429 with Retry-After, or
  503), as a rate-limiting or overloaded front end would, then close that connection.
Everything else passes through untouched in both directions.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from dataclasses import dataclass, field

from tests.support.server import free_port


@dataclass
class Injected:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    method: str | None = None  # only for requests with this method


@dataclass
class FlakyProxy:
    upstream_port: int
    cut_after: int | None = None
    cut_method: str = "PATCH"
    cuts: int = 1
    port: int = 0
    inject: deque[Injected] = field(default_factory=deque)
    cuts_done: int = 0
    injected_done: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)
    _listener: socket.socket | None = None
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FlakyProxy:
        self.port = self.port or free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            self._sockets.clear()

    def __enter__(self) -> FlakyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            client.close()
            return
        with self._lock:
            self._sockets += [client, upstream]
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        try:
            self._requests(client, upstream)
        except OSError:
            pass
        finally:
            self._close(client, upstream)

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source, sink)

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = client.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:])
            }
            self.requests.append((method, path))
            if "chunked" in headers.get("transfer-encoding", "").lower():
                upstream.sendall(head + b"\r\n\r\n" + buffer)  # cannot follow: pass through
                self._pump(client, upstream)
                return
            length = int(headers.get("content-length") or 0)
            injected = self._next_injection(method)
            if injected is not None:
                while len(buffer) < length:
                    data = client.recv(65536)
                    if not data:
                        return
                    buffer += data
                self._answer(client, injected)
                return
            cut = self._should_cut(method, length)
            upstream.sendall(head + b"\r\n\r\n")
            remaining = length
            while remaining:
                if not buffer:
                    buffer = client.recv(65536)
                    if not buffer:
                        return
                take = buffer[:remaining]
                if cut is not None:
                    take = take[:cut]
                upstream.sendall(take)
                remaining -= len(take)
                buffer = buffer[len(take) :]
                if cut is not None:
                    cut -= len(take)
                    if cut <= 0:
                        return  # the finally closes both sides mid-body

    def _next_injection(self, method: str) -> Injected | None:
        with self._lock:
            if self.inject and self.inject[0].method in (None, method):
                self.injected_done += 1
                return self.inject.popleft()
        return None

    def _should_cut(self, method: str, length: int) -> int | None:
        with self._lock:
            if (
                self.cut_after is not None
                and self.cuts_done < self.cuts
                and method == self.cut_method
                and length > self.cut_after
            ):
                self.cuts_done += 1
                return self.cut_after
        return None

    def _answer(self, client: socket.socket, injected: Injected) -> None:
        reason = {429: "Too Many Requests", 503: "Service Unavailable", 502: "Bad Gateway"}.get(
            injected.status, "Error"
        )
        lines = [
            f"HTTP/1.1 {injected.status} {reason}",
            f"Content-Length: {len(injected.body)}",
            "Connection: close",
            *(f"{k}: {v}" for k, v in injected.headers.items()),
        ]
        client.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + injected.body)
