"""`api.hot_reads` answers manifest GET/HEAD and blob HEAD exactly as Starlette's route would.

Two applications are built in-process from the same settings, each over a data folder of its
own set up by the same requests: one with the hot reads (as `dockyard serve` runs), one without
(every request through Starlette). Each request of the matrix goes to both, one after the
other, and the answers must be identical but for the request id: status, every header, body,
the access log line, the metrics sample, the count of requests and the pull event noted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dockyard.api.app import create_app
from dockyard.assembly import build_registry, prepare
from dockyard.auth.gate import ACCESS_VERSION_SECONDS
from dockyard.config import Settings, Upstream
from dockyard.core import cosign, keys
from dockyard.service.metrics import process_metrics
from tests.support.server import RunningRegistry, free_port

Message = dict[str, Any]
Headers = list[tuple[bytes, bytes]]
ADMIN_PASSWORD = "hot-admin-Pa55"
ALICE = "Basic " + base64.b64encode(b"alice:alice-Pa55word").decode()
BOB = "Basic " + base64.b64encode(b"bob:bob-Pa55word1").decode()
ADMIN = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
OCI = "application/vnd.oci.image.manifest.v1+json"
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
ETAG = "(If-None-Match: alice/pub's manifest)"  # a case of the matrix, not an Accept value


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class App:
    """One application served in-process: started with its lifespan, called request by request."""

    def __init__(self, settings: Settings, hot_reads: bool) -> None:
        self.settings = settings
        self.registry = build_registry(settings, migrate=False)
        self.app = create_app(settings, self.registry, hot_reads=hot_reads)
        self.pulls: list[tuple[Any, ...]] = []
        self.activity = None

    async def start(self) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.lifespan = asyncio.create_task(self.app(scope, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        assert (await self.outbox.get())["type"] == "lifespan.startup.complete"
        events = self.registry.events
        pulled = events.pulled

        def noted(key: Any, origin: Callable[[], Any]) -> None:
            self.pulls.append(key)
            pulled(key, origin)

        events.pulled = noted  # type: ignore[method-assign]
        self.activity = self.registry.gc.activity

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.outbox.get()
        await self.lifespan

    async def request(
        self, method: str, target: str, headers: Headers = (), body: bytes = b""
    ) -> tuple[int, Headers, bytes]:
        path, _, query = target.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1:5000"), *headers],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 5000),
            "state": {},
        }
        if body:
            scope["headers"].append((b"content-length", str(len(body)).encode()))
        chunks = [body]
        sent: list[Message] = []

        async def receive() -> Message:
            return {
                "type": "http.request",
                "body": chunks.pop() if chunks else b"",
                "more_body": False,
            }

        async def send(message: Message) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        # Starlette's exception layer leaves its handlers in the scope: the hot reads do not.
        self.through_starlette = "starlette.exception_handlers" in scope
        start = sent[0]
        return (
            start["status"],
            list(start["headers"]),
            b"".join(m.get("body", b"") for m in sent[1:]),
        )


async def push(app: App, repo: str, tag: str, seed: str, auth: str) -> str:
    """A one-layer image; its manifest digest."""
    layer = f"layer {seed}".encode()
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    for blob in (layer, config):
        status, _, body = await app.request(
            "POST",
            f"/v2/{repo}/blobs/uploads/?digest={sha256(blob)}",
            [(b"authorization", auth.encode())],
            blob,
        )
        assert status == 201, body
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    headers = [(b"authorization", auth.encode()), (b"content-type", OCI.encode())]
    status, _, body = await app.request("PUT", f"/v2/{repo}/manifests/{tag}", headers, manifest)
    assert status == 201, body
    return sha256(manifest)


async def push_signature(app: App, repo: str, digest: str, private: Any) -> None:
    """A cosign signature of `digest` by `private`, under the digest's `.sig` tag."""
    payload = cosign.payload(f"127.0.0.1:5000/{repo}", digest)
    manifest, config = cosign.signature_manifest(
        [cosign.layer(payload, keys.sign(private, payload))]
    )
    auth = [(b"authorization", ALICE.encode())]
    for blob in (payload, config):
        status, _, body = await app.request(
            "POST", f"/v2/{repo}/blobs/uploads/?digest={sha256(blob)}", auth, blob
        )
        assert status == 201, body
    headers = [*auth, (b"content-type", OCI.encode())]
    status, _, body = await app.request(
        "PUT", f"/v2/{repo}/manifests/{cosign.signature_tag(digest)}", headers, manifest
    )
    assert status == 201, body


async def push_upstream(url: str) -> None:
    """`lib/img:1.0` on the upstream registry, which the caches pull through."""
    import httpx

    async with httpx.AsyncClient(base_url=url) as http:
        layer, config = b"upstream layer", b'{"architecture":"amd64","os":"linux"}'
        for blob in (layer, config):
            done = await http.post(
                f"/v2/lib/img/blobs/uploads/?digest={sha256(blob)}", content=blob
            )
            assert done.status_code == 201, done.text
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha256(config),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha256(layer),
                        "size": len(layer),
                    }
                ],
            }
        ).encode()
        put = await http.put(
            "/v2/lib/img/manifests/1.0", content=manifest, headers={"content-type": OCI}
        )
        assert put.status_code == 201, put.text


async def json_call(app: App, method: str, path: str, auth: str, document: Any, status: int) -> Any:
    headers = [(b"authorization", auth.encode()), (b"content-type", b"application/json")]
    got, _, body = await app.request(method, path, headers, json.dumps(document).encode())
    assert got == status, (path, got, body)
    return json.loads(body) if body else None


async def set_up(app: App, private: Any) -> dict[str, Any]:
    """Accounts, repositories, a signature policy, tokens: the same requests on either app.
    Returns what the matrix needs of this app (its token secrets, the digests)."""
    for name, password in (("alice", "alice-Pa55word"), ("bob", "bob-Pa55word1")):
        await json_call(
            app, "POST", "/api/v1/users", ADMIN, {"name": name, "password": password}, 201
        )
    found: dict[str, Any] = {"auth": {"anonymous": None, "alice": ALICE, "bob": BOB}}
    found["pub"] = await push(app, "alice/pub", "1.0", "pub", ALICE)
    found["priv"] = await push(app, "alice/priv", "1.0", "priv", ALICE)
    found["signed"] = await push(app, "alice/signed", "1.0", "signed", ALICE)
    found["unsigned"] = await push(app, "alice/signed", "2.0", "unsigned", ALICE)
    await push_signature(app, "alice/signed", found["signed"], private)
    for repo in ("alice/pub", "alice/signed"):
        await json_call(
            app,
            "PUT",
            f"/api/v1/repositories/{repo}/visibility",
            ALICE,
            {"visibility": "public"},
            200,
        )
    pem = keys.public_key_pem(private).decode()
    await json_call(
        app,
        "PUT",
        "/api/v1/policies/signed/alice/signed",
        ADMIN,
        {"keys": [pem], "mode": "enforce"},
        200,
    )
    made = await json_call(
        app, "POST", "/api/v1/tokens", ALICE, {"name": "ci", "scope": "read"}, 201
    )
    pat = "Basic " + base64.b64encode(f"alice:{made['token']}".encode()).decode()
    found["auth"]["pat"] = pat
    for key, basic, scope in (
        ("bearer-priv", ALICE, "repository:alice/priv:pull"),
        ("bearer-pub", ALICE, "repository:alice/pub:pull"),
        ("bearer-pat", pat, "repository:alice/priv:pull,push"),
        ("bearer-bob", BOB, "repository:alice/priv:pull"),
        ("bearer-anonymous", None, "repository:alice/pub:pull"),
        ("bearer-catalog", ALICE, "registry:catalog:*"),
        ("bearer-catalog-bob", BOB, "registry:catalog:*"),
        ("bearer-catalog-anonymous", None, "registry:catalog:*"),
    ):
        headers = [(b"authorization", basic.encode())] if basic else []
        status, _, body = await app.request(
            "GET", f"/token?service=dockyard&scope={scope}", headers
        )
        assert status == 200, body
        found["auth"][key] = "Bearer " + json.loads(body)["token"]
    found["auth"]["garbage"] = "Bearer not.a.token"
    found["auth"]["wrong-password"] = "Basic " + base64.b64encode(b"alice:wrong-Pa55").decode()
    return found


# The listings, with every kind of `n` and `last` a client may send: paged, clamped, refused
# (not a number, too long, a digit of another script, empty), repeated, escaped, with `ns`.
PAGING = [
    "",
    "?n=1",
    "?n=2",
    "?n=0",
    "?n=",
    "?n=10000",
    "?n=10001",
    "?n=1234567890",
    "?n=-1",
    "?n=1.5",
    "?n=abc",
    "?n=%C2%B2",
    "?n=%31",
    "?n=+1",
    "?n=1&n=2",
    "?last=",
    "?n=1&last=1.0",
    "?n=1&last=alice%2Fpriv",
    "?n=1&last=alice/pub",
    "?last=zzz",
    "?last=%FF%FE&n=1",
    "?last=a%22b%5C&n=1",
    "?last=%00",
    "?n=1&ns=mirror.test",
    "?n=1&ns=elsewhere.test",
    "?n=1&other=%",
]
LISTINGS = [
    *(f"/v2/_catalog{query}" for query in PAGING),
    *(f"/v2/alice/signed/tags/list{query}" for query in PAGING),
    "/v2/alice/pub/tags/list",
    "/v2/alice/priv/tags/list?n=1",
    "/v2/alice/absent/tags/list",
    "/v2/Alice/Pub/tags/list",
    "/v2//tags/list",
    "/v2/alice/pub/manifests/tags/list",
    "/v2/mirror.test/lib/img/tags/list",
    "/v2/mirror.test/lib/img/tags/list?n=1&last=0",
    "/v2/lib/img/tags/list?ns=mirror.test",
    "/v2/lib/img/tags/list?n=1&ns=mirror.test",
    "/v2/lib/img/tags/list?ns=elsewhere.test",
    "/v2/_catalog/tags/list",
]


def is_listing(path: str) -> bool:
    """Whether the hot reads take the path as a listing's (a tag list or the catalog)."""
    route = path.partition("?")[0]
    return route == "/v2/_catalog" or route.endswith("/tags/list")


def matrix(digests: dict[str, str], layer: str) -> list[tuple[str, str, str, list[str]]]:
    """(method, path, who, Accept values): each request of the comparison."""
    # With "If-None-Match" too: a GET of a manifest whose ETag it names is answered 304.
    accepts: list[list[str]] = [
        [],
        [OCI],
        [DOCKER],
        [f"{DOCKER}, {OCI}"],
        [DOCKER, OCI],
        ["*/*"],
        ["text/html"],
        [ETAG],
    ]
    paths = [
        "/v2/alice/pub/manifests/1.0",
        f"/v2/alice/pub/manifests/{digests['pub']}",
        "/v2/alice/pub/manifests/missing",
        f"/v2/alice/pub/manifests/sha256:{'0' * 64}",
        "/v2/alice/pub/manifests/sha256:short",
        "/v2/alice/priv/manifests/1.0",
        f"/v2/alice/priv/manifests/{digests['priv']}",
        "/v2/alice/absent/manifests/1.0",
        "/v2/carol/other/manifests/1.0",
        "/v2/Alice/Pub/manifests/1.0",
        "/v2/alice//pub/manifests/1.0",
        "/v2//manifests/1.0",
        "/v2/alice/pub/manifests/bad%20tag",
        "/v2/alice/signed/manifests/1.0",
        "/v2/alice/signed/manifests/2.0",
        f"/v2/alice/signed/manifests/{digests['unsigned']}",
        "/v2/mirror.test/lib/img/manifests/1.0",
        "/v2/lib/img/manifests/1.0?ns=mirror.test",
        "/v2/lib/img/manifests/1.0?ns=elsewhere.test",
        "/v2/mirror.test/lib/img/manifests/missing",
        f"/v2/alice/pub/blobs/{layer}",
        f"/v2/alice/priv/blobs/{layer}",
        f"/v2/alice/pub/blobs/sha256:{'1' * 64}",
        "/v2/alice/pub/blobs/sha256:nothex",
        "/v2/alice/pub/blobs/md5:abc",
        f"/v2/alice/pub/blobs/{digests['pub']}",
        f"/v2/Bad/blobs/{layer}",
        f"/v2/alice/pub/blobs/uploads/{layer}",
        *LISTINGS,
    ]
    whos = [
        "anonymous",
        "alice",
        "bob",
        "pat",
        "bearer-priv",
        "bearer-pub",
        "bearer-pat",
        "bearer-bob",
        "bearer-anonymous",
        "garbage",
        "wrong-password",
    ]
    # Tokens for the catalog are asked for the listings alone.
    catalog_whos = ["bearer-catalog", "bearer-catalog-bob", "bearer-catalog-anonymous"]
    cases = []
    for path in paths:
        for who in whos + catalog_whos if path in LISTINGS else whos:
            if who == "wrong-password" and path not in (
                paths[0],
                paths[5],
                paths[20],
                *LISTINGS[:2],
            ):
                continue  # each one pays a password hash: a few suffice
            for method in ("GET", "HEAD"):
                for accept in (
                    accepts if "/manifests/" in path and who in ("anonymous", "alice") else [[OCI]]
                ):
                    cases.append((method, path, who, accept))
                    if who == "anonymous":  # again: the hot reads may give a remembered answer
                        cases.append((method, path, who, accept))
    return cases


REQUEST_ID = re.compile(r"request_id=\S+")
DURATION = re.compile(r" \d+\.\dms")


def without_id(headers: Headers) -> Headers:
    """The headers but the request id's value, and Retry-After's, which counts seconds of the
    clock until the window ends (the two answers may fall either side of a second)."""
    return [
        (name, b"-" if name in (b"x-request-id", b"retry-after") else value)
        for name, value in headers
    ]


def retry_after(headers: Headers) -> int | None:
    return next((int(value) for name, value in headers if name == b"retry-after"), None)


@pytest.mark.parametrize("accounts", [True, False], ids=["accounts", "open"])
def test_hot_reads_answer_as_starlette_does(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, accounts: bool
) -> None:
    upstream = RunningRegistry(
        data_dir=tmp_path / "upstream", port=free_port(), log_dir=tmp_path
    ).start()
    try:
        asyncio.run(compare(tmp_path, caplog, upstream.url, accounts))
    finally:
        upstream.stop()


async def compare(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, upstream: str, accounts: bool
) -> None:
    def settings(folder: str) -> Settings:
        return Settings(
            data_dir=tmp_path / folder,
            auth=accounts,
            anonymous_pull_limit=12,
            authenticated_pull_limit=40,
            # A failed login's lockout counts in windows of the clock: the two apps could
            # fall either side of a window's end.
            login_failure_limit=0,
            event_pulls=True,
            metrics=True,
            log_requests=True,
            proxies=[Upstream(name="mirror.test", url=upstream, anonymous=True)],
        )

    private = keys.generate_private_key()
    apps: list[App] = []
    setups = []
    for folder, hot in (("hot", True), ("plain", False)):
        await prepare(settings(folder), ADMIN_PASSWORD)
        app = App(settings(folder), hot)
        await app.start()
        apps.append(app)
    hot, plain = apps
    try:
        await push_upstream(upstream)
        for app in apps:
            if accounts:
                setups.append(await set_up(app, private))
            else:
                found = {"auth": {"anonymous": None}}
                for repo in ("alice/pub", "alice/priv", "alice/signed"):
                    found[repo.split("/")[1]] = await push(app, repo, "1.0", repo, "")
                found["unsigned"] = found["signed"]
                setups.append(found)
        assert setups[0]["pub"] == setups[1]["pub"]
        # Account changes reach the access checks within ACCESS_VERSION_SECONDS: the second
        # app's set-up would otherwise be half seen by its first requests, and not the first's.
        await asyncio.sleep(ACCESS_VERSION_SECONDS * 2)
        layer = sha256(b"layer pub")
        samples: dict[int, list[tuple[Any, ...]]] = {0: [], 1: []}
        metrics = process_metrics()
        done = metrics.request_done
        now = [0]

        def recorded(
            route: str, method: str, status: int, seconds: float, received: int, sent: int
        ) -> None:
            samples[now[0]].append((route, method, status, received, sent))
            done(route, method, status, seconds, received, sent)

        metrics.request_done = recorded  # type: ignore[method-assign]
        compared = 0
        for method, path, who, accept in matrix(setups[0], layer):
            if who not in setups[0]["auth"]:
                continue
            answers = []
            waits: list[int | None] = []
            for index, app in enumerate(apps):
                now[0] = index
                headers = [(b"accept", value.encode()) for value in accept if value != ETAG]
                if ETAG in accept:
                    headers.append((b"if-none-match", f'"{setups[index]["pub"]}"'.encode()))
                auth = setups[index]["auth"][who]
                if auth:
                    headers.append((b"authorization", auth.encode()))
                caplog.clear()
                started = app.activity.started
                with caplog.at_level(logging.INFO, logger="dockyard.access"):
                    status, answer_headers, body = await app.request(method, path, headers)
                lines = [
                    DURATION.sub(" -ms", REQUEST_ID.sub("request_id=-", record.getMessage()))
                    for record in caplog.records
                    if record.name == "dockyard.access"
                ]
                waits.append(retry_after(answer_headers))
                answers.append(
                    (
                        status,
                        without_id(answer_headers),
                        body,
                        lines,
                        samples[index][-1:],
                        app.activity.started - started,
                        app.activity.in_progress,
                        app.pulls[-1:] if app.pulls else [],
                        len(app.pulls),
                    )
                )
            assert answers[0] == answers[1], (
                method,
                path,
                who,
                accept,
                answers[0][2],
                answers[1][2],
            )
            if waits[0] is not None:
                assert waits[1] is not None and abs(waits[0] - waits[1]) <= 1, waits
            hot_route = (
                "/manifests/" in path
                or (method == "HEAD" and "/blobs/" in path and "/blobs/uploads/" not in path)
                or is_listing(path)
            )
            assert hot.through_starlette is not hot_route, (method, path)
            assert plain.through_starlette
            compared += 1
        statuses = {case for case in samples[0]}
        seen = {status for _, _, status, _, _ in statuses}
        # The matrix reached every kind of answer it is meant to compare.
        assert {200, 304, 404} <= seen and (not accounts or {400, 401, 403, 429} <= seen), seen
        assert len(hot.pulls) > 0
    finally:
        for app in apps:
            await app.stop()


def test_an_answer_passes_through_one_wrapper_of_send(tmp_path: Path) -> None:
    """Counting, metrics, headers, the access log and the cap per client are one layer: each
    message of a hot read's answer passes through one wrapper of the server's `send` in our
    code, and one middleware's frames (each layer more costs a coroutine frame per request, and
    one wrapping `send` a closure call per message)."""

    async def scenario() -> list[list[str]]:
        settings = Settings(data_dir=tmp_path / "data", metrics=True, log_requests=True)
        await prepare(settings, ADMIN_PASSWORD)
        app = App(settings, hot_reads=True)
        await app.start()
        try:
            await push(app, "alice/pub", "1.0", "alice/pub", "")
            depths: list[list[str]] = []
            sent = app.request

            async def counted(method: str, target: str) -> None:
                inner = app.app
                app.app = _recording(inner, depths)  # type: ignore[assignment]
                try:
                    status, _, _ = await sent(method, target, [(b"accept", OCI.encode())])
                    assert status == 200
                finally:
                    app.app = inner

            await counted("GET", "/v2/alice/pub/manifests/1.0")
            await counted("HEAD", "/v2/alice/pub/manifests/1.0")
            await counted("HEAD", f"/v2/alice/pub/blobs/{sha256(b'layer alice/pub')}")
            return depths
        finally:
            await app.stop()

    depths = asyncio.run(scenario())
    assert len(depths) == 6  # a start and a body message per answer
    layers = [
        "RegistryHeaders.__call__",
        "RegistryHeaders._serve",
        "HotReads.__call__",
        "Prebuilt.__call__",
        "RegistryHeaders._serve.<locals>.wrapped_send",
    ]
    assert depths == [layers] * 6


def test_a_remembered_answer_is_given_by_the_outermost_layer(tmp_path: Path) -> None:
    """A pull answered from memory is sent by the outermost middleware itself, with no layer
    below it and no wrapper of `send`: its counting, headers, log line and metrics are that
    layer's own (the matrix of `test_hot_reads_answer_as_starlette_does` holds them equal to
    Starlette's), and every layer more costs a coroutine frame per request."""

    async def scenario() -> list[list[str]]:
        settings = Settings(data_dir=tmp_path / "data", metrics=True, log_requests=True)
        async with started(settings) as app:
            await push(app, "alice/pub", "1.0", "alice/pub", "")
            depths: list[list[str]] = []
            app.app = _recording(app.app, depths)  # type: ignore[assignment]
            for method, path in (
                ("GET", "/v2/alice/pub/manifests/1.0"),
                ("HEAD", "/v2/alice/pub/manifests/1.0"),
                ("HEAD", f"/v2/alice/pub/blobs/{sha256(b'layer alice/pub')}"),
            ):
                for _ in range(2):  # the second is remembered
                    status, _, _ = await app.request(method, path, [(b"accept", OCI.encode())])
                    assert status == 200
            return depths

    depths = asyncio.run(scenario())
    assert len(depths) == 12
    replayed = ["RegistryHeaders.__call__", "RegistryHeaders._replay"]
    assert [depths[i] for i in (2, 3, 6, 7, 10, 11)] == [replayed] * 6
    assert all(depths[i] != replayed for i in (0, 1, 4, 5, 8, 9))


def test_a_client_at_its_cap_is_refused_a_remembered_answer(tmp_path: Path) -> None:
    """The cap on a client's requests in progress holds for answers given from memory: with
    one request of the client's in progress (an upload waiting for its body) and a cap of one,
    a remembered pull is refused with 429, and given again once the upload is done."""

    async def scenario() -> None:
        settings = Settings(data_dir=tmp_path / "data", max_requests_per_client=1)
        async with started(settings) as app:
            await push(app, "alice/pub", "1.0", "alice/pub", "")
            status, headers, _ = await app.request("POST", "/v2/alice/pub/blobs/uploads/")
            assert status == 202
            location = dict(headers)[b"location"].decode()
            read = ("GET", "/v2/alice/pub/manifests/1.0", [(b"accept", OCI.encode())])
            for _ in range(2):
                status, _, _ = await app.request(*read)
                assert status == 200
            hot = app.app.hot  # type: ignore[attr-defined]
            assert hot.answers
            body_wanted = asyncio.Event()
            body_given = asyncio.Event()
            blob = b"held blob"

            async def receive() -> Message:
                body_wanted.set()
                await body_given.wait()
                return {"type": "http.request", "body": blob, "more_body": False}

            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "PUT",
                "scheme": "http",
                "path": location,
                "raw_path": location.encode(),
                "query_string": f"digest={sha256(blob)}".encode(),
                "root_path": "",
                "headers": [
                    (b"host", b"127.0.0.1:5000"),
                    (b"content-length", str(len(blob)).encode()),
                ],
                "client": ("127.0.0.1", 40001),
                "server": ("127.0.0.1", 5000),
                "state": {},
            }
            sent: list[Message] = []

            async def send(message: Message) -> None:
                sent.append(message)

            upload = asyncio.create_task(app.app(scope, receive, send))
            await body_wanted.wait()
            assert hot.answers  # nothing written yet: the answer is still remembered
            status, _, body = await app.request(*read)
            assert status == 429, body
            assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"
            body_given.set()
            await upload
            assert sent[0]["status"] == 201
            status, _, _ = await app.request(*read)
            assert status == 200

    asyncio.run(scenario())


def _recording(inner: Any, depths: list[list[str]]) -> Any:
    """`inner`, noting the `dockyard.api` frames around each message it sends into `depths`."""

    async def recording(scope: Message, receive: Any, send: Any) -> None:
        async def recording_send(message: Message) -> None:
            depths.append(_wrappers_of_send())
            await send(message)

        await inner(scope, receive, recording_send)

    return recording


def _wrappers_of_send() -> list[str]:
    """The frames of `dockyard.api` on the stack, outermost first."""
    frame = sys._getframe(1)
    found = []
    while frame is not None:
        code = frame.f_code
        if "/dockyard/api/" in code.co_filename:
            found.append(code.co_qualname)
        frame = frame.f_back  # type: ignore[assignment]
    return found[::-1]


def test_a_manifests_and_a_blobs_headers_are_built_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a manifest's or a blob's answer says of it alone is built the first time it is
    answered and reused after; the answer is the same every time, and what varies by request
    (the request id, a pull's RateLimit headers) is never kept with it."""
    from dockyard.api import responses
    from dockyard.api.routes import blobs, manifests
    from dockyard.core.bounded_cache import BoundedCache

    # The same pushes in another test of this process made the same digests: start afresh.
    monkeypatch.setattr(responses, "_HEADERS", BoundedCache(4096))
    built: list[str] = []
    for module, name in ((manifests, "_headers"), (blobs, "_sized")):
        original = getattr(module, name)

        def counted(*args: Any, _original: Any = original, _name: str = name) -> Any:
            built.append(_name)
            return _original(*args)

        monkeypatch.setattr(module, name, counted)

    async def scenario() -> None:
        settings = Settings(
            data_dir=tmp_path / "data", auth=True, anonymous_pull_limit=100, log_requests=False
        )
        await prepare(settings, ADMIN_PASSWORD)
        app = App(settings, hot_reads=True)
        await app.start()
        try:
            setup = await set_up(app, keys.generate_private_key())
            digest = setup["pub"]
            layer = sha256(b"layer pub")
            accept = [(b"accept", OCI.encode())]
            answers = []
            built.clear()  # what the set-up's own requests built
            for _ in range(3):
                for method, path in (
                    ("GET", "/v2/alice/pub/manifests/1.0"),
                    ("HEAD", f"/v2/alice/pub/manifests/{digest}"),
                    ("HEAD", f"/v2/alice/pub/blobs/{layer}"),
                ):
                    status, headers, body = await app.request(method, path, accept)
                    answers.append((method, path, status, without_id(headers), body))
            gets = [a for a in answers if a[0] == "GET"]
            assert len({repr(a) for a in gets}) == 3, "a pull's RateLimit headers move on"
            for status_headers in (a[3] for a in gets):
                names = [name for name, _ in status_headers]
                own = [b"content-type", b"docker-content-digest", b"etag", b"content-length"]
                assert names[:4] == own
                assert b"ratelimit-remaining" in names or b"ratelimit-limit" in names
            heads = [a for a in answers if a[0] == "HEAD"]
            assert len({repr(a) for a in heads if "/blobs/" in a[1]}) == 1
            blob = next(a for a in heads if "/blobs/" in a[1])
            assert blob[2] == 200 and blob[4] == b""
            assert dict(blob[3])[b"content-length"] == str(len(b"layer pub")).encode()
            assert dict(blob[3])[b"docker-content-digest"] == layer.encode()
        finally:
            await app.stop()

    asyncio.run(scenario())
    # One manifest (by tag and by digest alike) and one blob: each built once.
    assert sorted(built) == ["_headers", "_sized"]


def test_a_repeated_pull_is_answered_from_memory_until_the_store_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without accounts, a manifest GET or HEAD and a blob HEAD asked again are answered as
    remembered, with no repository lookup, for as long as SQLite's data version shows no
    commit by any connection: a tag moved or a blob unlinked by another registry on the same
    data folder (another worker or process) is seen by the very next request. The remembered
    answer is byte for byte the one the handler gave, and a pull still notes its pull event."""
    from dockyard.service.blobs import BlobService
    from dockyard.service.manifests import ManifestService

    looked_up: list[str] = []
    for cls, name in ((ManifestService, "resolve"), (BlobService, "stat")):
        original = getattr(cls, name)

        async def counted(self: Any, *args: Any, _original: Any = original, _n: str = name) -> Any:
            looked_up.append(_n)
            return await _original(self, *args)

        monkeypatch.setattr(cls, name, counted)

    async def scenario() -> None:
        settings = Settings(
            data_dir=tmp_path / "data", event_pulls=True, metrics=True, log_requests=True
        )
        await prepare(settings, ADMIN_PASSWORD)
        app = App(settings, hot_reads=True)
        other = App(settings, hot_reads=True)  # another process on the same data folder
        await app.start()
        await other.start()
        try:
            first = await push(app, "alice/pub", "1.0", "first", "")
            layer = sha256(b"layer first")
            accept = [(b"accept", OCI.encode())]
            reads = (
                ("GET", "/v2/alice/pub/manifests/1.0"),
                ("HEAD", "/v2/alice/pub/manifests/1.0"),
                ("HEAD", f"/v2/alice/pub/blobs/{layer}"),
            )
            answers = []
            looked_up.clear()
            pulls = len(app.pulls)
            for _ in range(3):
                for method, path in reads:
                    status, headers, body = await app.request(method, path, accept)
                    assert status == 200, body
                    answers.append((method, path, without_id(headers), body))
            assert looked_up == ["resolve", "resolve", "stat"], looked_up
            assert answers[:3] * 3 == answers
            assert dict(answers[0][2])[b"docker-content-digest"] == first.encode()
            assert len(app.pulls) - pulls == 3  # every GET is a pull, remembered or not
            # A different Accept header is another answer (negotiation may differ).
            status, _, _ = await app.request("GET", reads[0][1], [(b"accept", b"*/*")])
            assert status == 200 and looked_up[-1] == "resolve" and len(looked_up) == 4

            second = await push(other, "alice/pub", "1.0", "second", "")
            status, headers, _ = await app.request("GET", reads[0][1], accept)
            assert status == 200
            assert dict(headers)[b"docker-content-digest"] == second.encode()
            status, headers, _ = await app.request("HEAD", reads[1][1], accept)
            assert dict(headers)[b"docker-content-digest"] == second.encode()
            await app.request(*reads[2], accept)  # remembered again
            status, _, _ = await other.request("DELETE", reads[2][1])
            assert status == 202
            status, _, _ = await app.request(*reads[2], accept)
            assert status == 404
        finally:
            await other.stop()
            await app.stop()

    asyncio.run(scenario())


@asynccontextmanager
async def started(settings: Settings) -> AsyncIterator[App]:
    """A prepared registry's app with the hot reads in front, stopped on the way out."""
    await prepare(settings, ADMIN_PASSWORD)
    app = App(settings, hot_reads=True)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def test_a_pull_under_a_signature_policy_is_judged_every_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signature's verdict may rest on more than the store (a certificate's validity, the
    gate's own memory of a verification lasts a minute): a GET under a policy is never
    answered as remembered, while its HEAD (which the policy does not guard) may be."""
    from dockyard.service.signature_gate import SignatureGate

    judged: list[str] = []
    original = SignatureGate.check

    async def counted(self: Any, *args: Any) -> Any:
        judged.append("check")
        return await original(self, *args)

    monkeypatch.setattr(SignatureGate, "check", counted)

    async def scenario() -> None:
        async with started(Settings(data_dir=tmp_path / "data", log_requests=False)) as app:
            private = keys.generate_private_key()
            digest = await push(app, "alice/signed", "1.0", "signed", "")
            await push_signature(app, "alice/signed", digest, private)
            pem = keys.public_key_pem(private).decode()
            await app.registry.signature_policies.set("alice/signed", [pem], [], "enforce")
            judged.clear()
            accept = [(b"accept", OCI.encode())]
            for _ in range(3):
                status, _, body = await app.request("GET", "/v2/alice/signed/manifests/1.0", accept)
                assert status == 200, body
            assert judged == ["check"] * 3

    asyncio.run(scenario())


def test_remembered_answers_stay_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Answers are kept by paths and headers clients choose: at most so many, and so many
    bytes of bodies, whatever they ask; a forgotten answer is made again by its handler."""
    from dockyard.api import hot_reads

    monkeypatch.setattr(hot_reads, "REMEMBERED_ANSWERS", 3)

    async def scenario() -> None:
        async with started(Settings(data_dir=tmp_path / "data", log_requests=False)) as app:
            digest = await push(app, "alice/pub", "1.0", "pub", "")
            layer = sha256(b"layer pub")
            layer_hot = app.app.app  # inside the outermost middleware
            assert isinstance(layer_hot, hot_reads.HotReads)
            for accept in ("a/b", "c/d", "e/f", "g/h", "*/*"):
                status, _, _ = await app.request(
                    "GET", f"/v2/alice/pub/manifests/{digest}", [(b"accept", accept.encode())]
                )
                assert status == 200
                assert 1 <= len(layer_hot.answers) <= 3
            size = layer_hot.answers_bytes // len(layer_hot.answers)  # the manifest's
            assert size > 0
            monkeypatch.setattr(hot_reads, "REMEMBERED_BYTES", 4 * size - 1)
            kept = dict(layer_hot.answers)
            status, _, body = await app.request("GET", f"/v2/alice/pub/manifests/{digest}")
            assert status == 200 and len(body) == size
            assert layer_hot.answers == kept  # its body alone is more than a quarter
            monkeypatch.setattr(hot_reads, "REMEMBERED_BYTES", 4 * size + 1)
            for accept in ("i/j", "k/l"):  # the second would pass the bytes' bound
                await app.request(
                    "GET", f"/v2/alice/pub/manifests/{digest}", [(b"accept", accept.encode())]
                )
            assert layer_hot.answers_bytes <= 4 * size + 1
            for _ in range(2):
                status, _, _ = await app.request("HEAD", f"/v2/alice/pub/blobs/{layer}")
                assert status == 200
            assert any("/blobs/" in path for _, path, _, _ in layer_hot.answers)

    asyncio.run(scenario())


def test_with_accounts_nothing_is_answered_from_memory(tmp_path: Path) -> None:
    """Attack: anonymous pulls and listings of a public repository, then the repository made
    private. With accounts on, every pull has a caller (limits, visibility), so no answer may
    be kept: the first anonymous pull or tag list after the change is refused, and the
    catalog no longer names it, never given from memory."""
    from dockyard.api import hot_reads

    settings = Settings(data_dir=tmp_path / "data", auth=True, log_requests=False)

    async def scenario() -> None:
        async with started(settings) as app:
            setup = await set_up(app, keys.generate_private_key())
            hot = app.app.app
            assert isinstance(hot, hot_reads.HotReads)
            accept = [(b"accept", OCI.encode())]
            reads = (
                ("GET", "/v2/alice/pub/manifests/1.0"),
                ("HEAD", f"/v2/alice/pub/manifests/{setup['pub']}"),
                ("HEAD", f"/v2/alice/pub/blobs/{sha256(b'layer pub')}"),
            )
            tags = ("GET", "/v2/alice/pub/tags/list?n=5")
            # An anonymous token for the catalog, as docker's clients ask for one.
            token = setup["auth"]["bearer-catalog-anonymous"].encode()
            catalog = [(b"authorization", token)]
            for _ in range(3):
                for method, path in (*reads, tags):
                    status, _, _ = await app.request(method, path, accept)
                    assert status == 200
                status, _, body = await app.request("GET", "/v2/_catalog", catalog)
                assert json.loads(body) == {"repositories": ["alice/pub", "alice/signed"]}
            assert not hot.answers
            await json_call(
                app,
                "PUT",
                "/api/v1/repositories/alice/pub/visibility",
                ALICE,
                {"visibility": "private"},
                200,
            )
            await asyncio.sleep(ACCESS_VERSION_SECONDS + 0.1)
            for method, path in (*reads, tags):
                status, _, _ = await app.request(method, path, accept)
                assert status == 401, (method, path, status)
            status, _, body = await app.request("GET", "/v2/_catalog", catalog)
            assert status == 200 and json.loads(body) == {"repositories": ["alice/signed"]}
            assert not hot.answers

    asyncio.run(scenario())


def test_a_repeated_listing_is_answered_from_memory_until_the_store_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without accounts, a catalog page or a tag list asked again (same path, same query) is
    answered as remembered, with no listing read, until SQLite's data version shows a commit
    by any connection: a repository or a tag another process adds or removes is in the very
    next answer. Another query is another answer; the remembered one is byte for byte the
    handler's, its Link included."""
    from dockyard.service.listing import ListingService

    listed: list[str] = []
    for name in ("catalog", "tags"):
        original = getattr(ListingService, name)

        async def counted(self: Any, *args: Any, _original: Any = original, _n: str = name) -> Any:
            listed.append(_n)
            return await _original(self, *args)

        monkeypatch.setattr(ListingService, name, counted)

    async def scenario() -> None:
        settings = Settings(data_dir=tmp_path / "data", metrics=True, log_requests=True)
        async with started(settings) as app:
            other = App(settings, hot_reads=True)  # another process on the same data folder
            await other.start()
            try:
                for repo in ("alice/a", "alice/b", "alice/c"):
                    await push(app, repo, "1.0", repo, "")
                await push(app, "alice/a", "2.0", "a2", "")
                reads = (
                    ("GET", "/v2/_catalog"),
                    ("GET", "/v2/_catalog?n=1&last=alice/a"),
                    ("HEAD", "/v2/_catalog?n=1&last=alice/a"),
                    ("GET", "/v2/alice/a/tags/list?n=1"),
                )
                answers = []
                listed.clear()
                for _ in range(3):
                    for method, path in reads:
                        status, headers, body = await app.request(method, path)
                        assert status == 200, body
                        answers.append((method, path, without_id(headers), body))
                assert listed == ["catalog", "catalog", "catalog", "tags"], listed
                assert answers[:4] * 3 == answers
                assert json.loads(answers[1][3]) == {"repositories": ["alice/b"]}
                assert (b"link", b'</v2/_catalog?n=1&last=alice%2Fb>; rel="next"') in answers[1][2]
                status, _, body = await app.request("GET", "/v2/_catalog?n=1&last=alice/b")
                assert json.loads(body) == {"repositories": ["alice/c"]}
                assert listed[-1] == "catalog" and len(listed) == 5

                await push(other, "alice/ab", "1.0", "ab", "")
                status, _, body = await app.request(*reads[1])
                assert json.loads(body) == {"repositories": ["alice/ab"]}
                status, _, body = await app.request(*reads[3])
                assert json.loads(body) == {"name": "alice/a", "tags": ["1.0"]}
                assert (await other.request("DELETE", "/v2/alice/a/manifests/1.0"))[0] == 202
                status, _, body = await app.request(*reads[3])
                assert json.loads(body) == {"name": "alice/a", "tags": ["2.0"]}
                assert (await other.request("DELETE", "/api/v1/repositories/alice/ab"))[0] == 200
                status, _, body = await app.request(*reads[1])
                assert json.loads(body) == {"repositories": ["alice/b"]}
            finally:
                await other.stop()

    asyncio.run(scenario())
