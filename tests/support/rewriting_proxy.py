"""A loopback HTTP proxy in front of a real registry that lets a test rewrite, or answer in place
of, what the registry says: an upstream that lies, steers or claims what it does not have."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import httpx

from tests.support.server import free_port


class Layer(Protocol):
    digest: str
    compressed: bytes


Rewrite = Callable[[str, str, dict[str, str]], dict[str, str]]
Own = Callable[[str, str], httpx.Response | None]


def unchanged(method: str, path: str, headers: dict[str, str]) -> dict[str, str]:
    return headers


@contextmanager
def rewriting_proxy(
    target: str, rewrite: Rewrite, own: Own = lambda method, path: None
) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP proxy in front of a real registry that passes every request on and lets
    `rewrite(method, path, headers)` change the answer's headers; `own(method, path)` may instead
    give an answer of its own (a lying upstream; or a quick one, as the real upstream checks a
    password per request). Yields its host and the list of `METHOD path` it answered."""
    relayed: list[str] = []
    hop = {"connection", "transfer-encoding", "content-length", "keep-alive"}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes

        def log_message(self, *args: Any) -> None:
            pass

        def _relay(self) -> None:
            relayed.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in hop | {"host"}}
            resp = own(self.command, self.path)
            if resp is None:
                resp = httpx.request(
                    self.command, target + self.path, headers=headers, content=body, timeout=60
                )
            length = str(len(resp.content))
            if self.command == "HEAD":
                length = resp.headers.get("content-length", length)
            answer = {k: v for k, v in resp.headers.items() if k.lower() not in hop}
            answer = rewrite(self.command, self.path, answer)
            self.send_response(resp.status_code)
            for key, value in answer.items():
                self.send_header(key, value)
            self.send_header("Content-Length", length)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(resp.content)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", relayed
    finally:
        server.shutdown()
        server.server_close()


def claiming(layer: Layer, path_suffix: str = "") -> Own:
    """An `own` answer for an upstream that says it has `layer` (right size, right digest) but
    sends zeros instead of its bytes."""

    def claim(method: str, path: str) -> httpx.Response | None:
        if path.endswith(f"{path_suffix}/blobs/{layer.digest}"):
            size = str(len(layer.compressed))
            headers = {"Content-Length": size, "Docker-Content-Digest": layer.digest}
            body = b"" if method == "HEAD" else b"\0" * len(layer.compressed)
            return httpx.Response(200, headers=headers, content=body)
        return None

    return claim
