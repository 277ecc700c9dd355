"""An upstream that lies about a blob cannot make the cache keep bytes under a digest they do not
hash to, nor hand any client the whole announced length of them.

The cache sends its blob GET without a HEAD first and announces the GET's Content-Length, so
every lie is told in that one answer: other bytes than the digest names, a Content-Length longer
or shorter than the body, no Content-Length at all, a redirect to a host that sends other bytes,
a body that stalls. After each, the right bytes are served from the same upstream and the cache
must ask for them again (it kept nothing) and pass them on whole.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.client.blob_body import DIRECT_FROM
from tests.proxy.helpers import proxies_env, sha256
from tests.support.server import RunningRegistry

MiB = 1024 * 1024
# Answers one blob request: (handler, the blob's bytes, the redirect host's URL).
Answer = Callable[[BaseHTTPRequestHandler, bytes, str], None]


def send_head(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()


def send_whole(handler: BaseHTTPRequestHandler, body: bytes, length: int | None = None) -> None:
    """200 with `body`, announcing `length` bytes (the body's own length unless told)."""
    send_head(handler, 200, {"Content-Length": str(len(body) if length is None else length)})
    if handler.command == "GET":
        handler.wfile.write(body)
    if length is not None and length != len(body):
        handler.close_connection = True


def right(handler: BaseHTTPRequestHandler, blob: bytes, _: str) -> None:
    send_whole(handler, blob)


def last_byte_changed(handler: BaseHTTPRequestHandler, blob: bytes, _: str) -> None:
    send_whole(handler, blob[:-1] + bytes([blob[-1] ^ 1]))


def longer_length(handler: BaseHTTPRequestHandler, blob: bytes, _: str) -> None:
    send_whole(handler, blob, len(blob) + MiB)  # and hangs up after the blob


def shorter_length(handler: BaseHTTPRequestHandler, blob: bytes, _: str) -> None:
    send_whole(handler, blob[:-1])  # a whole, well-formed answer, one byte short


def chunked(body_of: Callable[[bytes], bytes]) -> Answer:
    """No Content-Length on the GET (chunked), the blob's size on the HEAD."""

    def answer(handler: BaseHTTPRequestHandler, blob: bytes, _: str) -> None:
        if handler.command == "HEAD":
            send_whole(handler, blob)
            return
        send_head(handler, 200, {"Transfer-Encoding": "chunked"})
        body = body_of(blob)
        for start in range(0, len(body), 300_000):
            piece = body[start : start + 300_000]
            handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")

    return answer


def redirected(handler: BaseHTTPRequestHandler, blob: bytes, elsewhere: str) -> None:
    send_head(handler, 307, {"Location": f"{elsewhere}{handler.path}", "Content-Length": "0"})


def stalling(handler: BaseHTTPRequestHandler, blob: bytes, _: str) -> None:
    send_head(handler, 200, {"Content-Length": str(len(blob))})
    if handler.command == "GET":
        handler.wfile.write(blob[:MiB])
        handler.wfile.flush()
        time.sleep(20)  # far past the cache's timeout_seconds
    handler.close_connection = True


@dataclass
class Hostile:
    """A registry whose blob answers `answer` decides; it counts requests by (method, path)."""

    answer: Answer = right
    blob: bytes = b""
    elsewhere: str = ""
    requests: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def serving(hostile: Hostile, blob_answer: Callable[[Hostile], Answer]) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            hostile.requests.append((self.command, self.path))
            if "/blobs/" in self.path:
                blob_answer(hostile)(self, hostile.blob, hostile.elsewhere)
                return
            found = self.path.rstrip("/") == "/v2"
            send_head(self, 200 if found else 404, {"Content-Length": "2"})
            self.wfile.write(b"{}")

        do_GET = do_HEAD = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fetch(url: str) -> tuple[int, bytes, int | None]:
    """Status, the bytes received before the answer ended (or broke), the announced length."""
    got = b""
    status, length = 0, None
    try:
        with httpx.stream("GET", url, timeout=60) as resp:
            status = resp.status_code
            length = (
                int(resp.headers["content-length"]) if "content-length" in resp.headers else None
            )
            for piece in resp.iter_raw():
                got += piece
    except httpx.HTTPError:
        pass
    return status, got, length


def held(data_dir: Path, digest: str) -> list[Path]:
    """Files of the cache named by the digest's hex, wherever they are."""
    return [p for p in data_dir.rglob(f"*{digest.split(':', 1)[1]}*") if p.is_file()]


def blob_gets(hostile: Hostile) -> list[tuple[str, str]]:
    return [r for r in hostile.requests if r[0] == "GET" and "/blobs/" in r[1]]


LIES: dict[str, Answer] = {
    "last byte changed": last_byte_changed,
    "Content-Length longer than the body": longer_length,
    "Content-Length one byte short": shorter_length,
    "chunked, other bytes": chunked(lambda blob: blob[:-1] + b"\0"),
    "redirected to other bytes": redirected,
    "stalls after the first MiB": stalling,
}


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lying_upstream_leaves_nothing_cached_and_no_client_the_whole_answer(
    lie: str, start_registry: Callable[..., RunningRegistry]
) -> None:
    liar = Hostile(answer=LIES[lie], blob=os.urandom(DIRECT_FROM + 2 * MiB + 12345))
    digest = sha256(liar.blob)
    # Where a redirect leads: a host that sends other bytes, with the right length.
    other = Hostile(answer=last_byte_changed, blob=liar.blob)
    with (
        serving(other, lambda h: h.answer) as other_url,
        serving(liar, lambda h: h.answer) as url,
    ):
        liar.elsewhere = other_url
        cache = start_registry(
            env=proxies_env({"name": "up", "url": url, "timeout_seconds": 2}),
        )
        blob_url = f"{cache.url}/v2/up/library/app/blobs/{digest}"
        for _ in range(2):
            status, got, length = fetch(blob_url)
            assert status in (200, 503), (lie, status)
            if status == 200:
                # Never the whole announced answer (the last bytes wait for the digest), so
                # the client's HTTP layer reports a broken answer, whatever bytes it holds.
                assert length is not None and len(got) < length, (lie, len(got), length)
            assert held(cache.data_dir, digest) == [], lie
        # Nothing kept from the first: asked again (a stalled upstream is instead left alone
        # for a while, as any that timed out).
        gets = len(blob_gets(liar))
        assert gets == (1 if LIES[lie] is stalling else 2), (lie, liar.requests)

        # The upstream mends its ways: the blob is asked for again and passed on whole.
        liar.answer = right
        deadline = time.monotonic() + 30
        while True:  # a stalled upstream is left alone for a few seconds
            status, got, _ = fetch(blob_url)
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 200 and got == liar.blob, (lie, status, len(got))
        assert len(blob_gets(liar)) == gets + 1, liar.requests
        # Kept once published, which may end just after the client has the last byte.
        deadline = time.monotonic() + 30
        while not held(cache.data_dir, digest) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(held(cache.data_dir, digest)) == 1, lie


def test_an_upstream_sending_no_content_length_still_fills_the_cache(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    honest = Hostile(answer=chunked(lambda blob: blob), blob=os.urandom(DIRECT_FROM + 2 * MiB + 7))
    digest = sha256(honest.blob)
    with serving(honest, lambda h: h.answer) as url:
        cache = start_registry(env=proxies_env({"name": "up", "url": url}))
        blob_url = f"{cache.url}/v2/up/library/app/blobs/{digest}"
        status, got, length = fetch(blob_url)
        assert status == 200 and got == honest.blob and length == len(honest.blob)
        # The size from a HEAD, the bytes from the one GET; then served from the cache.
        asked = [r for r in honest.requests if "/blobs/" in r[1]]
        assert sorted(m for m, _ in asked) == ["GET", "HEAD"], asked
        again = httpx.get(blob_url, timeout=60)
        assert again.status_code == 200 and again.content == honest.blob
        assert len([r for r in honest.requests if "/blobs/" in r[1]]) == 2
