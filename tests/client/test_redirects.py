"""The client and redirects, Retry-After: credentials never follow a redirect to another host
(nor answer that host's challenge), and a short Retry-After on 429 or 503 is waited out.

Two small loopback servers of the test's own: a "registry" that wants Basic credentials and
redirects, and "elsewhere" on another port that records every request's headers."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dockyard.client.credentials import Credentials
from dockyard.client.errors import ClientError, RateLimited
from dockyard.client.registry import RegistryClient
from dockyard.client.transport import RetryPolicy

BLOB = b"the blob's bytes" * 100
DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
SECRET = Credentials("alice", "correct horse battery")
Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Recorder:
    """A loopback HTTP server answering by `route(method, path, headers)`, keeping the
    headers of every request it got."""

    route: Callable[[str, str, dict[str, str]], Answer]
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.server_address[1]}"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                recorder.seen.append((self.command, self.path, headers))
                status, extra, body = recorder.route(self.command, self.path, headers)
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **extra}.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = _any

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    @contextmanager
    def running(self) -> Iterator[Recorder]:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def registry_route(elsewhere: Recorder) -> Callable[[str, str, dict[str, str]], Answer]:
    """Wants Basic credentials; sends blobs and a manifest to `elsewhere`."""

    def route(method: str, path: str, headers: dict[str, str]) -> Answer:
        if "authorization" not in headers:
            return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b""
        if path.startswith("/v2/app/blobs/") or path.startswith("/v2/app/manifests/"):
            return 307, {"Location": f"http://{elsewhere.host}/store{path}"}, b""
        return 200, {"Content-Type": "application/json"}, b"{}"

    return route


def store_route(method: str, path: str, headers: dict[str, str]) -> Answer:
    if path.startswith("/store/v2/app/blobs/"):
        return 200, {"Docker-Content-Digest": DIGEST}, BLOB
    if path.startswith("/store/v2/app/manifests/"):
        body = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
        return 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, body
    return 404, {}, b""


def challenging_route(me: list[Recorder]) -> Callable[[str, str, dict[str, str]], Answer]:
    """Another host that asks for credentials, Basic or through a token service of its own
    (which, were it asked, would hand out a token)."""

    def route(method: str, path: str, headers: dict[str, str]) -> Answer:
        if path.startswith("/token"):
            return 200, {"Content-Type": "application/json"}, b'{"token": "t"}'
        realm = f"http://{me[0].host}/token"
        scheme = "Basic" if path.startswith("/basic") else f'Bearer realm="{realm}"'
        return 401, {"WWW-Authenticate": scheme}, b""

    return route


async def read_all(chunks) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def test_credentials_do_not_follow_a_redirect_to_another_host() -> None:
    elsewhere = Recorder(store_route)
    with elsewhere.running(), Recorder(registry_route(elsewhere)).running() as registry:

        async def go() -> tuple[bytes, int | None, object]:
            async with RegistryClient(registry.host, credentials=SECRET) as client:
                data = await read_all(client.open_blob("app", DIGEST))
                size = await client.blob_size("app", DIGEST)
                manifest = await client.get_manifest("app", "v1")
                return data, size, manifest

        data, size, manifest = asyncio.run(go())
    assert data == BLOB and size == len(BLOB) and manifest is not None
    # The registry got the credentials; the other host saw every redirected read, none with them.
    assert any("authorization" in headers for _, _, headers in registry.seen)
    assert {method for method, _, _ in elsewhere.seen} == {"GET", "HEAD"}
    assert len(elsewhere.seen) >= 3
    assert not [h for _, _, h in elsewhere.seen if "authorization" in h]


@pytest.mark.parametrize("kind", ["basic", "bearer"])
def test_the_other_hosts_challenge_is_not_answered(kind: str) -> None:
    me: list[Recorder] = []
    with Recorder(challenging_route(me)).running() as elsewhere:
        me.append(elsewhere)

        def route(method: str, path: str, headers: dict[str, str]) -> Answer:
            if "authorization" not in headers:
                return 401, {"WWW-Authenticate": 'Basic realm="registry"'}, b""
            return 307, {"Location": f"http://{elsewhere.host}/{kind}{path}"}, b""

        with Recorder(route).running() as registry:

            async def go() -> None:
                async with RegistryClient(registry.host, credentials=SECRET) as client:
                    await read_all(client.open_blob("app", DIGEST))

            with pytest.raises(ClientError):
                asyncio.run(go())
    assert elsewhere.seen, "the redirect was followed"
    assert not [h for _, _, h in elsewhere.seen if "authorization" in h]
    assert not [p for _, p, _ in elsewhere.seen if "/token" in p]


def flaky_route(answers: list[Answer]) -> Callable[[str, str, dict[str, str]], Answer]:
    """Answers from `answers` first, then 200."""

    def route(method: str, path: str, headers: dict[str, str]) -> Answer:
        if answers:
            return answers.pop(0)
        return 200, {"Content-Type": "application/json"}, b'{"name": "app", "tags": ["v1"]}'

    return route


@pytest.mark.parametrize("status", [429, 503])
def test_a_short_retry_after_is_waited_out(status: int) -> None:
    answers: list[Answer] = [(status, {"Retry-After": "1"}, b"")]
    with Recorder(flaky_route(answers)).running() as registry:

        async def go() -> list[str]:
            policy = RetryPolicy(backoff=0.01, rate_limit_wait=5)
            async with RegistryClient(registry.host, retry=policy) as client:
                return await client.list_tags("app")

        started = time.monotonic()
        assert asyncio.run(go()) == ["v1"]
        waited = time.monotonic() - started
    assert waited >= 0.9, "the backoff alone (0.01 s) would have been quicker"
    # The refused request (the client's first look at /v2/) was asked again, once.
    assert [path for _, path, _ in registry.seen][:2] == ["/v2/", "/v2/"]


@pytest.mark.parametrize("status", [429, 503])
def test_a_long_retry_after_comes_back_at_once(status: int) -> None:
    answers: list[Answer] = [(status, {"Retry-After": "3600"}, b"")] * 4
    with Recorder(flaky_route(answers)).running() as registry:

        async def go() -> None:
            policy = RetryPolicy(backoff=0.01, rate_limit_wait=5)
            async with RegistryClient(registry.host, retry=policy) as client:
                await client.list_tags("app")

        started = time.monotonic()
        with pytest.raises(ClientError) as caught:
            asyncio.run(go())
        assert time.monotonic() - started < 5
    assert len(registry.seen) == 1, "asked again before the registry said to"
    if status == 429:
        assert isinstance(caught.value, RateLimited) and caught.value.retry_after == 3600


def test_the_commands_honour_retry_after(docker_config) -> None:
    """`dockyard` commands build their registry clients with a bounded Retry-After wait."""
    from dockyard.client.api import RETRY_AFTER_WAIT, Client

    client = Client()
    assert 0 < client.registry("127.0.0.1:5000").retry.rate_limit_wait == RETRY_AFTER_WAIT <= 60
