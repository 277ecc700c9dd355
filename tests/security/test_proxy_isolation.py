"""Issue 13, findings 2, 4, 6 and 10: the pull-through cache and the mirror must never open a
private repository, let an ordinary account stand in for the upstream, or let the upstream send
the cache (and its credentials) elsewhere."""

from __future__ import annotations

import asyncio
import json
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

from dockyard.client import registry as client_registry
from dockyard.client.credentials import Credentials
from dockyard.client.errors import ClientError
from dockyard.client.registry import RegistryClient
from tests.proxy.helpers import (
    ACCEPT,
    OCI_MANIFEST,
    TokenFlow,
    cache_with_accounts,
    error_of,
    get_manifest,
    make_image,
    proxies_env,
    pull,
    push_blob,
    push_built_image,
    push_manifest,
    sha256,
    upstream,
)
from tests.support.auth_peers import token_distribution
from tests.support.peers import Distribution
from tests.support.rewriting_proxy import claiming, rewriting_proxy, unchanged
from tests.support.server import RunningRegistry, free_port

ADMIN = httpx.BasicAuth("admin", "admin-pw")
MALLORY = httpx.BasicAuth("mallory", "mallory-pw")
UPSTREAM_USERS = {"puller": "upstream-s3cret"}
EMPTY = b"{}"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"


# -- helpers ------------------------------------------------------------------------------------


def push_referrer(http: httpx.Client, repo: str, subject_digest: str, subject_size: int) -> str:
    push_blob(http, repo, EMPTY)
    empty = {"mediaType": EMPTY_TYPE, "digest": sha256(EMPTY), "size": len(EMPTY)}
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": empty,
            "layers": [empty],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": subject_size},
        }
    ).encode()
    return push_manifest(http, repo, sha256(body), body, OCI_MANIFEST)


def shape(resp: httpx.Response) -> tuple[Any, ...]:
    """What a client can tell from an answer, short of the bytes of a 200."""
    code = None
    if resp.status_code >= 400 and resp.request.method != "HEAD":
        code = error_of(resp)["code"]
    body = resp.json() if resp.status_code == 200 and "referrers" in resp.request.url.path else None
    return resp.status_code, code, "www-authenticate" in resp.headers, body


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Recorder:
    """An HTTP server that records every request and answers 404: a host nothing may reach."""

    host: str = "127.0.0.2"
    port: int = 0
    requests: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def __enter__(self) -> Recorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                recorder.requests.append(
                    Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                )
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_HEAD = _answer

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


# -- finding 2 ----------------------------------------------------------------------------------


def test_finding_02_private_digests_are_absent_through_cache_prefix_mirror_mount_and_referrers(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    secret = make_image(tmp_path, "only-here")  # exists only in a private repository
    shared = make_image(tmp_path, "also-upstream")  # private here, public upstream
    with upstream(tmp_path / "upstream") as up:
        up.push_image("library/public", "v1", shared)
        up.push_image("library/copy", "v1", shared)
        cache = cache_with_accounts(start_registry, up.url)
        with httpx.Client(base_url=cache.url, timeout=60, auth=ADMIN) as admin:
            push_built_image(admin, "secret/app", "v1", secret)
            push_built_image(admin, "secret/app", "v2", shared)
            push_referrer(admin, "secret/app", secret.manifest_digest, len(secret.manifest_bytes))

        never = sha256(b"a digest nobody ever pushed")
        private = [secret.config_digest, *(layer.digest for layer in secret.layers)]
        names = ["up/library/public", "up/library/nothing", "library/public", "library/nothing"]
        with (
            httpx.Client(base_url=cache.url, timeout=60) as anon,
            httpx.Client(base_url=cache.url, timeout=60, auth=MALLORY) as mallory,
        ):
            for http in (anon, mallory):
                for name in names:
                    missing_blob = shape(http.get(f"/v2/{name}/blobs/{never}"))
                    missing_head = shape(http.head(f"/v2/{name}/blobs/{never}"))
                    assert missing_blob[:2] == (404, "BLOB_UNKNOWN"), (name, missing_blob)
                    for digest in private:
                        got = http.get(f"/v2/{name}/blobs/{digest}")
                        assert shape(got) == missing_blob, (name, digest, got.status_code)
                        head = http.head(f"/v2/{name}/blobs/{digest}")
                        assert shape(head) == missing_head, (name, digest, head.status_code)
                    manifest = get_manifest(http, name, secret.manifest_digest)
                    assert shape(manifest) == shape(get_manifest(http, name, never)), name
                    assert manifest.status_code == 404
                    referrers = http.get(f"/v2/{name}/referrers/{secret.manifest_digest}")
                    assert shape(referrers) == shape(http.get(f"/v2/{name}/referrers/{never}"))
                    assert referrers.status_code == 200 and referrers.json()["manifests"] == []

            # Nothing of it was linked into a cached repository, so nothing mounts from there,
            # nor automatically, into an account's own repository.
            for digest in private:
                for source in [*names, None]:
                    params = {"mount": digest, **({"from": source} if source else {})}
                    mount = mallory.post("/v2/mallory/loot/blobs/uploads/", params=params)
                    assert mount.status_code == 202, (source, mount.status_code, mount.text)
                    assert mallory.head(f"/v2/mallory/loot/blobs/{digest}").status_code == 404

            # What the upstream serves for a repository is served, though its bytes were here
            # already (in a private repository only): the upstream proves it has them by
            # sending them. Once a cached repository holds them, another one the upstream
            # says has them too links them without a download.
            up.proxy.reset()
            config = shared.config_digest
            assert pull(anon, "up/library/public", "v1").digest == shared.manifest_digest
            assert up.proxy.matching("GET", f"/v2/library/public/blobs/{config}")
            assert pull(anon, "up/library/copy", "v1").digest == shared.manifest_digest
            assert up.proxy.matching("HEAD", f"/v2/library/copy/blobs/{config}")
            assert not up.proxy.matching("GET", f"/v2/library/copy/blobs/{config}")
            # ...and only there.
            for name in ("up/library/nothing", "library/nothing"):
                got = anon.get(f"/v2/{name}/blobs/{shared.config_digest}")
                assert got.status_code == 404, (name, got.status_code)

        with httpx.Client(base_url=cache.url, timeout=60, auth=ADMIN) as admin:
            assert pull(admin, "secret/app", "v1").digest == secret.manifest_digest


def test_finding_02_an_upstream_claiming_a_private_digest_does_not_get_it_served(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    secret = make_image(tmp_path, "claimed")
    layer = secret.layers[0]

    # The upstream says it has the private layer (right size) but cannot send its bytes.
    claim = claiming(layer)
    with (
        upstream(tmp_path / "upstream") as up,
        rewriting_proxy(up.dist.url, unchanged, claim) as (host, _),
    ):
        cache = cache_with_accounts(start_registry, f"http://{host}")
        with httpx.Client(base_url=cache.url, timeout=60, auth=ADMIN) as admin:
            push_built_image(admin, "secret/app", "v1", secret)
        with (
            httpx.Client(base_url=cache.url, timeout=60) as anon,
            httpx.Client(base_url=cache.url, timeout=60, auth=MALLORY) as mallory,
        ):
            for name in ("up/library/liar", "library/liar"):
                assert anon.head(f"/v2/{name}/blobs/{layer.digest}").status_code == 200
                got = anon.get(f"/v2/{name}/blobs/{layer.digest}")
                assert got.status_code != 200 or got.content != layer.compressed, name
                again = anon.get(f"/v2/{name}/blobs/{layer.digest}")
                assert again.status_code != 200 or again.content != layer.compressed, name
                mount = mallory.post(
                    "/v2/mallory/loot/blobs/uploads/",
                    params={"mount": layer.digest, "from": "up/library/liar"},
                )
                assert mount.status_code == 202, mount.text


@contextmanager
def cutting_upstream(digest: str, size: int, sent: int) -> Iterator[str]:
    """A registry that says it has blob `digest` of `size` bytes, then sends `sent` zero bytes
    of it slowly and hangs up. Yields its host."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self) -> None:
            if self.path.endswith(f"/blobs/{digest}"):
                self.send_response(200)
                self.send_header("Content-Length", str(size))
                self.send_header("Docker-Content-Digest", digest)
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command == "GET":
                    for _ in range(10):
                        self.wfile.write(b"\0" * (sent // 10))
                        self.wfile.flush()
                        time.sleep(0.15)
                self.close_connection = True
                return
            found = self.path.rstrip("/") == "/v2"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_HEAD = _answer

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_finding_02_a_failed_download_never_continues_from_a_private_copy(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    private = bytes(range(1, 256)) * (3 * 1024 * 1024 // 255)  # no zero byte in it
    digest = sha256(private)
    with cutting_upstream(digest, len(private), 512 * 1024) as host:
        cache = start_registry(
            "--auth",
            "--workers",
            "2",
            env={
                "DOCKYARD_ADMIN_PASSWORD": "admin-pw",
                **proxies_env({"name": "up", "url": f"http://{host}", "anonymous": True}),
            },
        )
        with httpx.Client(base_url=cache.url, timeout=60, auth=ADMIN) as admin:
            push_blob(admin, "secret/app", private)

        received: list[bytes] = []

        def fetch(delay: float) -> None:
            time.sleep(delay)
            got = b""
            # A new connection each: the clients spread over both worker processes, so some
            # follow a download another process leads.
            try:
                with httpx.stream(
                    "GET", f"{cache.url}/v2/up/library/liar/blobs/{digest}", timeout=60
                ) as resp:
                    for piece in resp.iter_bytes():
                        got += piece
                    if resp.status_code != 200:
                        # Refused before any byte (the download had failed by then): an
                        # error answer, never blob bytes.
                        assert resp.status_code == 503, (resp.status_code, got)
                        assert json.loads(got)["errors"][0]["code"] == "UNAVAILABLE", got
                        got = b""
            except httpx.HTTPError:
                pass
            received.append(got)

        threads = [threading.Thread(target=fetch, args=(i * 0.1,)) for i in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert len(received) == 12
        for got in received:
            assert got.count(0) == len(got), "a client got bytes the upstream never sent"


# -- finding 4 ----------------------------------------------------------------------------------


def test_finding_04_an_account_cannot_make_mirror_clients_pull_its_image(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    real = make_image(tmp_path, "upstream-alpine")
    fake = make_image(tmp_path, "hijacker-alpine")
    with upstream(tmp_path / "upstream") as up:
        up.push_image("library/alpine", "v1", real)
        cache = cache_with_accounts(start_registry, up.url)
        with httpx.Client(base_url=cache.url, timeout=60, auth=MALLORY) as mallory:
            for name in ("library", "up", "bitnami"):
                refused = mallory.post("/api/v1/orgs", json={"name": name})
                assert refused.status_code == 403, (name, refused.text)
                assert error_of(refused)["code"] == "DENIED"
                assert "administrator" in error_of(refused)["message"]
            start = mallory.post(
                "/v2/library/alpine/blobs/uploads/",
                params={"digest": fake.config_digest},
                content=fake.config_bytes,
            )
            assert start.status_code in (401, 403), start.text
            put = mallory.put(
                "/v2/library/alpine/manifests/v1",
                content=fake.manifest_bytes,
                headers={"Content-Type": OCI_MANIFEST},
            )
            assert put.status_code in (401, 403), put.text

        with httpx.Client(base_url=cache.url, timeout=60) as anon:
            assert pull(anon, "library/alpine", "v1").digest == real.manifest_digest
            token = anon.get(
                "/token", params={"service": "dockyard", "scope": "repository:library/alpine:pull"}
            )
            bearer = {"Authorization": f"Bearer {token.json()['token']}", "Accept": OCI_MANIFEST}
            got = anon.get("/v2/library/alpine/manifests/v1", headers=bearer)
            assert got.headers["docker-content-digest"] == real.manifest_digest

        # An administrator may still claim a namespace on purpose.
        made = httpx.post(f"{cache.url}/api/v1/orgs", auth=ADMIN, json={"name": "library"})
        assert made.status_code == 201, made.text


# -- finding 6 ----------------------------------------------------------------------------------


def test_finding_06_tag_list_links_stay_on_the_upstream_and_end(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    image = make_image(tmp_path, "paged")
    mode = {"link": ""}
    counter = iter(range(10**9))

    def add_link(method: str, path: str, headers: dict[str, str]) -> dict[str, str]:
        if "/tags/list" not in path:
            return headers
        if mode["link"] == "elsewhere":
            headers["Link"] = f'<{trap.url}/v2/library/app/tags/list?n=1&last=v1>; rel="next"'
        elif mode["link"] == "loop":
            headers["Link"] = '</v2/library/app/tags/list?n=1&last=v0>; rel="next"'
        elif mode["link"] == "endless":
            headers["Link"] = f'</v2/library/app/tags/list?n=1&last=x{next(counter)}>; rel="next"'
        return headers

    def endless_page(method: str, path: str) -> httpx.Response | None:
        if mode["link"] == "endless" and "last=x" in path:
            page = b'{"name":"library/app","tags":["x"]}'
            return httpx.Response(200, headers={"Content-Type": "application/json"}, content=page)
        return None

    with (
        Distribution(tmp_path / "upstream", users=UPSTREAM_USERS) as dist,
        Recorder() as trap,
        rewriting_proxy(dist.url, add_link, endless_page) as (host, relayed),
    ):
        with httpx.Client(
            base_url=dist.url, timeout=60, auth=httpx.BasicAuth(*next(iter(UPSTREAM_USERS.items())))
        ) as http:
            push_built_image(http, "library/app", "v1", image)
        user, password = next(iter(UPSTREAM_USERS.items()))
        entry = {"url": f"http://{host}", "username": user, "password": password}
        cache = start_registry(env=proxies_env({"name": "up", **entry}, {"name": "again", **entry}))
        with httpx.Client(base_url=cache.url, timeout=120) as http:
            assert http.get("/v2/up/library/app/tags/list").json()["tags"] == ["v1"]

            mode["link"] = "elsewhere"
            away = http.get("/v2/again/library/app/tags/list")
            assert away.status_code == 503 and error_of(away)["code"] == "UNAVAILABLE", away.text
            assert trap.requests == [], "the cache followed a Link to another host"

            mode["link"] = "endless"
            relayed.clear()
            began = time.monotonic()
            endless = http.get("/v2/up/library/app/tags/list")
            assert endless.status_code in (200, 503), endless.text
            pages = [p for p in relayed if "/tags/list" in p]
            assert len(pages) <= client_registry.MAX_PAGES + 1, len(pages)
            assert time.monotonic() - began < 60

        # The client every `dockyard` command uses follows the same rule.
        async def tags() -> list[str]:
            async with RegistryClient(host, credentials=Credentials(user, password)) as client:
                return await client.list_tags("library/app")

        for link, message in (
            ("elsewhere", "another host"),
            ("loop", "do not end"),
            ("endless", "do not end"),
        ):
            mode["link"] = link
            with pytest.raises(ClientError, match=message):
                asyncio.run(tags())
        assert trap.requests == []


def test_finding_06_credentials_go_to_a_token_realm_only_over_https_or_its_own_host(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    image = make_image(tmp_path, "token")
    user, password = next(iter(UPSTREAM_USERS.items()))
    with (
        token_distribution(tmp_path / "token", UPSTREAM_USERS, anonymous_pull=False) as (
            dist,
            tokens,
        ),
        Recorder() as trap,
    ):

        def steer(method: str, path: str, headers: dict[str, str]) -> dict[str, str]:
            challenge = headers.get("www-authenticate")
            if challenge:
                headers["www-authenticate"] = challenge.replace(tokens.realm, f"{trap.url}/token")
            return headers

        with (
            rewriting_proxy(dist.url, steer) as (host, _),
            httpx.Client(base_url=dist.url, timeout=60, auth=TokenFlow(user, password)) as http,
        ):
            push_built_image(http, "library/app", "v1", image)
            creds = {"username": user, "password": password}
            cache = start_registry(
                env=proxies_env(
                    {"name": "steered", "url": f"http://{host}", **creds},
                    {"name": "direct", "url": dist.url, **creds},
                )
            )
            with httpx.Client(base_url=cache.url, timeout=60) as client:
                steered = get_manifest(client, "steered/library/app", "v1")
                assert steered.status_code == 503, steered.text
                assert "refusing to send credentials" in error_of(steered)["message"]
                # A plain-HTTP realm on the upstream's own host still gets them.
                assert pull(client, "direct/library/app", "v1").digest == image.manifest_digest

            async def tags() -> list[str]:
                async with RegistryClient(host, credentials=Credentials(user, password)) as c:
                    return await c.list_tags("library/app")

            with pytest.raises(ClientError, match="refusing to send credentials"):
                asyncio.run(tags())
        assert [r for r in trap.requests if "authorization" in r.headers] == []
        assert trap.requests == []


# -- finding 10 ---------------------------------------------------------------------------------


def test_finding_10_with_a_mirror_a_private_repository_answers_as_a_missing_one(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    local = make_image(tmp_path, "private-local")
    upstream_one = make_image(tmp_path, "upstream-namesake")
    with upstream(tmp_path / "upstream") as up:
        up.push_image("shadow/app", "v1", upstream_one)
        cache = cache_with_accounts(start_registry, up.url)
        with httpx.Client(base_url=cache.url, timeout=60, auth=ADMIN) as admin:
            push_built_image(admin, "secret/app", "v1", local)
            push_built_image(admin, "shadow/app", "v1", local)
            push_referrer(admin, "secret/app", local.manifest_digest, len(local.manifest_bytes))

        def answers(
            http: httpx.Client, name: str, headers: dict[str, str] | None = None
        ) -> list[tuple[Any, ...]]:
            headers = {"Accept": ACCEPT, **(headers or {})}
            return [
                shape(r)
                for r in (
                    http.get(f"/v2/{name}/manifests/v1", headers=headers),
                    http.head(f"/v2/{name}/manifests/v1", headers=headers),
                    http.get(f"/v2/{name}/manifests/{local.manifest_digest}", headers=headers),
                    http.get(f"/v2/{name}/tags/list", headers=headers),
                    http.get(f"/v2/{name}/blobs/{local.layers[0].digest}", headers=headers),
                    http.head(f"/v2/{name}/blobs/{local.config_digest}", headers=headers),
                    http.get(f"/v2/{name}/referrers/{local.manifest_digest}", headers=headers),
                    http.post(f"/v2/{name}/blobs/uploads/", headers=headers),
                )
            ]

        with (
            httpx.Client(base_url=cache.url, timeout=60) as anon,
            httpx.Client(base_url=cache.url, timeout=60, auth=MALLORY) as mallory,
        ):
            for http in (anon, mallory):
                assert answers(http, "secret/app") == answers(http, "nothere/app")
                # A name the upstream has: the upstream's image, as for any missing name.
                got = get_manifest(http, "shadow/app", "v1")
                assert got.status_code == 200, got.text
                assert got.headers["docker-content-digest"] == upstream_one.manifest_digest

            # With a token for the name (which the mirror's pull earns), still the mirror's.
            def bearer(name: str) -> dict[str, str]:
                token = anon.get(
                    "/token", params={"service": "dockyard", "scope": f"repository:{name}:pull"}
                )
                assert token.status_code == 200, token.text
                return {"Authorization": f"Bearer {token.json()['token']}"}

            first = answers(anon, "secret/app", bearer("secret/app"))
            assert first == answers(anon, "nothere/app", bearer("nothere/app"))
            got = anon.get(
                "/v2/shadow/app/manifests/v1", headers={"Accept": ACCEPT, **bearer("shadow/app")}
            )
            assert got.headers["docker-content-digest"] == upstream_one.manifest_digest

        with httpx.Client(base_url=cache.url, timeout=60, auth=ADMIN) as admin:
            assert pull(admin, "secret/app", "v1").digest == local.manifest_digest
            assert pull(admin, "shadow/app", "v1").digest == local.manifest_digest
