"""A small HTTP load balancer on loopback, for rolling-restart tests.

It plays the part nginx plays in front of replicas with `proxy_next_upstream error`: each
request goes to the next replica in turn; a replica that refuses the connection (stopped, or
restarting) is skipped, and a request a replica dropped without answering a byte (a
keep-alive connection it closed while idle, as a stopping server does) is sent to the next
one. A request that got any answer is never sent twice, and an answer is passed on as it came
(a 5xx included), so a test that counts failures sees every real one.

Written here rather than run as nginx: the tests need no package beyond the venv, and every
retry is recorded (`retries`) so a test can tell which kinds of failure the balancer hid.
Bodies are buffered whole (the tests' blobs are small), which is what makes a retry possible.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from tests.support.server import OnLoopback, free_port

# Headers of one connection, not of the message (RFC 9110 section 7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


@dataclass
class Balancer(OnLoopback):
    """Round-robin over `backends` (base URLs); `start()` serves on a free port in a thread."""

    backends: Sequence[str]
    port: int = field(default_factory=free_port)
    retries: list[str] = field(default_factory=list)
    forwarded: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._turn = 0
        self._clients = [
            httpx.Client(base_url=b, timeout=60.0, follow_redirects=False) for b in self.backends
        ]
        self._server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> Balancer:
        balancer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
                status, reply_headers, reply = balancer.forward(
                    self.command, self.path, headers, body
                )
                self.send_response_only(status)
                for name, value in reply_headers:
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                if self.command != "HEAD" or reply:
                    self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for client in self._clients:
            client.close()

    def forward(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Send the request to the replicas in turn until one answers; 502 if none does."""
        with self._lock:
            first = self._turn
            self._turn = (self._turn + 1) % len(self._clients)
        # Each replica twice: the first try may land on a pooled connection the replica has
        # just closed, the second opens a new one (refused if the replica is down).
        order = [(first + i) % len(self._clients) for i in range(len(self._clients))] * 2
        for index in order:
            client = self._clients[index]
            request = client.build_request(method, path, headers=headers, content=body)
            try:
                response = client.send(request, stream=True)
            except httpx.ConnectError as exc:
                self._note(f"{self.backends[index]} refused: {exc}")
                continue
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                # Before a status line arrived: the replica closed (or reset) the connection
                # without taking the request, as a stopping server does with idle ones.
                self._note(f"{self.backends[index]} closed without answering: {exc!r}")
                continue
            try:
                reply = b"".join(response.iter_raw())
            finally:
                response.close()
            with self._lock:
                self.forwarded += 1
            return response.status_code, list(response.headers.multi_items()), reply
        return 502, [], b"no replica answered"

    def _note(self, what: str) -> None:
        with self._lock:
            self.retries.append(what)
