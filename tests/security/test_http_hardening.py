"""Issue 13, findings 9, 11, 14 and 16, and the client-compatibility items (a) and (b).

9: a manifest's bytes count as a pull by whichever route they are read (the blobs endpoint
too). 11: a cross-repository mount needs the token's own pull grant on the source, not only the
account's roles. 14: bad input gets a 4xx with the spec's JSON body, and a bug a JSON 500, never
Starlette's plain text. 16: an anonymous look at a private repository does exactly the work a
look at a missing one does. (a): a token lacking what its account may do is answered 401
`insufficient_scope`, so clients fetch a bigger one; an upload's status needs only pull. (b):
with accounts on, a bare catalog request is challenged, so docker-style clients send their
credentials and see their own private repositories.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.api.app import create_app
from dockyard.assembly import build_registry, open_registry
from dockyard.auth.requests import Caller, Need
from dockyard.auth.setup import build_auth
from dockyard.config import Settings
from dockyard.core.errors import RegistryError
from dockyard.service.accounts import ANONYMOUS
from tests.auth.helpers import (
    ADMIN_PASSWORD,
    OCI_MANIFEST,
    AuthRegistry,
    admin_auth,
    basic,
    code_of,
    config_blob,
    get_manifest,
    manifest_for,
    push_image,
    put_manifest,
    sha256,
    upload_blob,
)
from tests.support.peers import SHARED_PEERS, find_binary, run
from tests.support.push import SPEC_CODES, error_code, unique_repo
from tests.support.server import RunningRegistry, free_port

QUIET = {
    "DOCKYARD_ANONYMOUS_PULL_LIMIT": "0",
    "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "0",
    "DOCKYARD_LOGIN_FAILURE_LIMIT": "0",
}
CAROL, DAVE = ("carol", "carol-Pa55"), ("dave", "dave-Pa55")
WEB, CI = "acme/web", "carol/ci"


def start_auth(tmp: Path, env: dict[str, str] | None = None) -> RunningRegistry:
    return RunningRegistry(
        data_dir=tmp / "data",
        port=free_port(),
        args=("--auth",),
        env={**QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})},
        log_dir=tmp,
    ).start()


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    """Accounts on, limits off: carol reads the private acme/web and owns carol/ci; dave owns
    acme; acme/site is public."""
    server = start_auth(tmp_path_factory.mktemp("hardening"))
    reg = AuthRegistry(server)
    reg.add_user(*CAROL)
    reg.add_user(*DAVE)
    reg.admin("org", "create", "acme", "--owner", "dave")
    reg.admin("org", "add-member", "acme", "carol", "--role", "reader")
    with reg.client() as http:
        push_image(http, WEB, "v1")
        push_image(http, "acme/site", "v1")
        push_image(http, CI, "v1")
    reg.admin("repo", "visibility", "acme/site", "public")
    yield reg
    server.stop()


# -- finding 9 ---------------------------------------------------------------------------------


def test_finding_09_manifest_read_through_blobs_route_counts_as_a_pull(tmp_path: Path) -> None:
    server = start_auth(
        tmp_path,
        {
            "DOCKYARD_ANONYMOUS_PULL_LIMIT": "3",
            "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "3",
            "DOCKYARD_PULL_LIMIT_WINDOW_SECONDS": "1000000000",
        },
    )
    try:
        reg = AuthRegistry(server)
        reg.add_user(*CAROL)
        reg.admin("org", "create", "acme")
        with reg.client() as http:
            digest, body = push_image(http, "acme/app", "v1")
            config = config_blob()
            assert upload_blob(http, "acme/app", config, admin_auth()).status_code == 201
        reg.admin("repo", "visibility", "acme/app", "public")
        blob_url = f"/v2/acme/app/blobs/{digest}"
        for auth in (None, basic(*CAROL)):  # counted by address, and by account
            headers = {"Authorization": auth} if auth else {}
            with reg.client() as http:
                # HEAD and layers stay free, whatever the route.
                for _ in range(5):
                    assert http.head(blob_url, headers=headers).status_code == 200
                    assert (
                        http.get(
                            f"/v2/acme/app/blobs/{sha256(config)}", headers=headers
                        ).status_code
                        == 200
                    )
                answers = [http.get(blob_url, headers=headers) for _ in range(2)]
                answers.append(get_manifest(http, "acme/app", "v1", auth))
                assert [a.status_code for a in answers] == [200, 200, 200], auth
                assert answers[0].content == body
                assert answers[1].headers["RateLimit-Remaining"].startswith("1;")
                # The fourth manifest read: a range of its bytes through the blobs endpoint.
                ranged = http.get(blob_url, headers={**headers, "Range": "bytes=0-9"})
                assert ranged.status_code == 429, ranged.text
                assert error_code(ranged) == "TOOMANYREQUESTS"
                refused = http.get(blob_url, headers=headers)
                assert refused.status_code == 429 and "Retry-After" in refused.headers
                assert get_manifest(http, "acme/app", "v1", auth).status_code == 429
        # A token of the same account draws on the same count.
        bearer = reg.bearer("repository:acme/app:pull", basic(*CAROL))
        with reg.client() as http:
            assert http.get(blob_url, headers={"Authorization": bearer}).status_code == 429
    finally:
        server.stop()


# -- finding 11 --------------------------------------------------------------------------------


def _mount(http: httpx.Client, auth: str, digest: str, source: str | None) -> httpx.Response:
    params = {"mount": digest, **({"from": source} if source else {})}
    return http.post(f"/v2/{CI}/blobs/uploads/", params=params, headers={"Authorization": auth})


def test_finding_11_mount_needs_the_tokens_pull_grant_on_the_source(reg: AuthRegistry) -> None:
    with reg.client() as http:
        secret = config_blob()
        assert upload_blob(http, WEB, secret, admin_auth()).status_code == 201
        digest = sha256(secret)
        narrow = reg.bearer(f"repository:{CI}:pull,push", basic(*CAROL))
        for source in (WEB, None):  # named source, and the automatic mount
            refused = _mount(http, narrow, digest, source)
            assert refused.status_code == 202, refused.text  # an ordinary upload instead
            assert (
                http.delete(
                    refused.headers["Location"], headers={"Authorization": narrow}
                ).status_code
                == 204
            )
            assert (
                http.head(
                    f"/v2/{CI}/blobs/{digest}", headers={"Authorization": admin_auth()}
                ).status_code
                == 404
            )
        # Nor by a manifest naming the blob (which links a readable blob from elsewhere).
        put = put_manifest(http, CI, "sneaky", manifest_for(secret), narrow)
        assert put.status_code == 400 and code_of(put) == "MANIFEST_BLOB_UNKNOWN", put.text
        assert (
            http.head(
                f"/v2/{CI}/blobs/{digest}", headers={"Authorization": admin_auth()}
            ).status_code
            == 404
        )
        # A token that also grants pull on the source mounts; so do Basic credentials (the
        # account's roles are all they carry).
        wide = reg.bearer([f"repository:{CI}:pull,push", f"repository:{WEB}:pull"], basic(*CAROL))
        mounted = _mount(http, wide, digest, WEB)
        assert mounted.status_code == 201, mounted.text
        other = config_blob()
        assert upload_blob(http, WEB, other, admin_auth()).status_code == 201
        assert _mount(http, basic(*CAROL), sha256(other), WEB).status_code == 201


# -- finding 14 --------------------------------------------------------------------------------


def assert_spec_error(response: httpx.Response, *codes: str) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"] == "application/json"
    assert error_code(response) in (codes or SPEC_CODES), response.text[:300]


def test_finding_14_deeply_nested_manifest_is_manifest_invalid(client: httpx.Client) -> None:
    repo = unique_repo()
    for depth in (65, 1_000, 100_000):
        for opening, closing in (("[", "]"), ('{"a":', "}")):
            body = (
                '{"schemaVersion":2,"x":' + opening * depth + "1" + closing * depth + "}"
            ).encode()
            response = client.put(
                f"/v2/{repo}/manifests/deep", content=body, headers={"Content-Type": OCI_MANIFEST}
            )
            assert response.status_code == 400, (depth, response.text[:200])
            assert_spec_error(response, "MANIFEST_INVALID")
    # Brackets inside strings are text, not nesting: a valid manifest full of them is fine.
    _, body = push_image_with_annotation(client, repo, "[" * 5000 + "{" * 5000)
    assert (
        client.get(f"/v2/{repo}/manifests/brackets", headers={"Accept": OCI_MANIFEST}).content
        == body
    )


def push_image_with_annotation(client: httpx.Client, repo: str, text: str) -> tuple[str, bytes]:
    config = config_blob()
    client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(config)}, content=config
    ).raise_for_status()
    body = json.loads(manifest_for(config))
    body["annotations"] = {"odd": text + '\\"' + text}
    raw = json.dumps(body).encode()
    response = client.put(
        f"/v2/{repo}/manifests/brackets", content=raw, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 201, response.text
    return response.headers["Docker-Content-Digest"], raw


def test_finding_14_unicode_digits_and_enormous_numbers_are_4xx(client: httpx.Client) -> None:
    repo = unique_repo()
    digest, _ = push_image_with_annotation(client, repo, "x")
    for n in ("\u00b2", "\u0663", "\uff11", "9" * 5000, "1" * 10):
        assert_spec_error(client.get(f"/v2/{repo}/tags/list", params={"n": n}), "UNSUPPORTED")
        assert_spec_error(client.get("/v2/_catalog", params={"n": n}), "UNSUPPORTED")
    blob = f"/v2/{repo}/blobs/{digest}"
    huge = "9" * 5000
    for spec in (
        f"bytes={huge}-",
        f"bytes=0-{huge}",
        f"bytes=-{huge}",
        f"bytes={huge}-{huge}",
        "bytes=\u00b2-",
        "bytes=\u0663-\u0664",
    ):
        response = client.get(blob, headers={"Range": spec.encode()})
        assert response.status_code in (200, 206, 416), (spec[:30], response.text[:200])
        if response.status_code == 416:
            assert_spec_error(response, "SIZE_INVALID")
    location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
    for spec in (f"{huge}-{huge}", "\u0660-\u0663", "0-\u00b2"):
        response = client.patch(location, content=b"x", headers={"Content-Range": spec.encode()})
        assert_spec_error(response, "BLOB_UPLOAD_INVALID")


def test_finding_14_malformed_content_length_is_size_invalid(registry: RunningRegistry) -> None:
    repo = unique_repo()
    for length in ("\u00b2".encode(), "\u0663".encode(), b"9" * 5000):
        request = (
            f"PUT /v2/{repo}/manifests/x HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        reply = raw_exchange(registry, request + length + b"\r\nConnection: close\r\n\r\n{}")
        status = int(reply.split(b" ", 2)[1])
        assert 400 <= status < 500, reply[:300]
        if b"\r\n\r\n" in reply and reply.split(b"\r\n\r\n", 1)[1]:
            assert b'"errors"' in reply, reply[:300]


def raw_exchange(registry: RunningRegistry, data: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_finding_14_deep_json_and_odd_numbers_to_the_account_api_and_in_tokens(
    reg: AuthRegistry,
) -> None:
    with reg.client() as http:
        # Not JSON to the parser (400), or beyond the body limit before any parsing (413).
        for depth, code in ((1_000, "BAD_REQUEST"), (100_000, "UNSUPPORTED")):
            response = http.put(
                f"/api/v1/repositories/{CI}/visibility",
                content=b"[" * depth + b"]" * depth,
                headers={"Authorization": basic(*CAROL), "Content-Type": "application/json"},
            )
            assert_spec_error(response, code)
        header = base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).rstrip(b"=").decode()
        response = http.get(
            f"/v2/{WEB}/manifests/v1", headers={"Authorization": f"Bearer {header}.e30.c2ln"}
        )
        assert_spec_error(response, "UNAUTHORIZED")
        # Numbers JSON cannot carry back (Infinity, NaN, 1e400) or that overflow a time.
        for number in ("1e400", "Infinity", "NaN", "-Infinity", "9" * 4000, "1" + "0" * 30):
            response = http.post(
                "/api/v1/tokens",
                content=f'{{"name": "odd", "scope": "read", "expires_in": {number}}}',
                headers={"Authorization": basic(*CAROL), "Content-Type": "application/json"},
            )
            assert_spec_error(response, "BAD_REQUEST")
            assert response.status_code == 400, (number[:10], response.text)


def test_finding_14_admin_commands_refuse_odd_numbers_cleanly(reg: AuthRegistry) -> None:
    """The same numbers given to the admin commands: a usage error (exit 2), no traceback."""
    for text in ("\u00b2", "\u0663", "9" * 5000):
        result = reg.admin("user", "pull-limit", CAROL[0], text, ok=False)
        assert result.exit_code == 2, (text[:10], result.output, result.exception)
        result = reg.admin(
            "token",
            "create",
            "--user",
            CAROL[0],
            "--name",
            "odd",
            "--scope",
            "read",
            "--expires",
            text,
            ok=False,
        )
        assert result.exit_code == 2, (text[:10], result.output, result.exception)


def test_finding_14_an_unexpected_error_answers_json_and_logs_the_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (here a service that raises) still answers the spec's JSON shape with a generic
    code, never Starlette's plain text, and the traceback is logged server-side."""
    settings = Settings(data_dir=tmp_path / "data", log_requests=False)
    registry = build_registry(settings)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug, with a secret detail")

    registry.listing.catalog = broken  # type: ignore[method-assign]
    caplog.set_level(logging.ERROR)
    response, head = asyncio.run(_ask_in_process(create_app(settings, registry)))
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"errors": [{"code": "UNKNOWN", "message": "internal error"}]}
    assert "secret detail" not in response.text
    assert head.status_code in (405, 500) and head.content == b""
    assert "a bug, with a secret detail" in caplog.text
    assert "Traceback" in caplog.text


async def _ask_in_process(app: object) -> tuple[httpx.Response, httpx.Response]:
    """GET and HEAD /v2/_catalog of an in-process app, its lifespan run around them."""
    events: asyncio.Queue[dict] = asyncio.Queue()
    done = asyncio.Queue[dict]()

    async def send(message: dict) -> None:
        await done.put(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    lifespan = asyncio.create_task(app(scope, events.get, send))  # type: ignore[operator]
    await events.put({"type": "lifespan.startup"})
    assert (await done.get())["type"] == "lifespan.startup.complete"
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
        answers = await http.get("/v2/_catalog"), await http.head("/v2/_catalog")
    await events.put({"type": "lifespan.shutdown"})
    await lifespan
    return answers


# -- finding 16 --------------------------------------------------------------------------------


def test_finding_16_private_and_missing_repositories_cost_the_same(tmp_path: Path) -> None:
    """Anonymous, a private repository (by the namespace default and by its own setting) and
    a missing one go through the same statements, in the same number, with the same answer.
    Timing is printed, never asserted."""
    settings = Settings(data_dir=tmp_path / "data", auth=True)
    result = asyncio.run(_private_versus_missing(settings))
    shapes = {name: [sql for sql, _ in statements] for name, (statements, _, _) in result.items()}
    answers = {name: answer for name, (_, answer, _) in result.items()}
    assert shapes["private-default"] == shapes["private-explicit"] == shapes["missing"], shapes
    # One lookup, whatever the answer (the store's version check beside it is the same too).
    assert len([sql for sql in shapes["missing"] if "REPO" in sql]) == 1, shapes
    assert answers["private-default"] == answers["private-explicit"] == answers["missing"]
    timings = {name: f"{median * 1e6:.1f} us" for name, (_, _, median) in result.items()}
    print("median authorize() time, anonymous:", timings)


async def _private_versus_missing(
    settings: Settings,
) -> dict[str, tuple[list[tuple[str, str]], tuple, float]]:
    async with open_registry(settings, create=True) as registry:
        auth = await build_auth(registry)
        accounts = registry.accounts
        await accounts.create_user("alice", "alice-Pa55word")
        await accounts.create_org("acme", "alice")
        await registry.meta.link_blob("alice/secret", sha256(b"a"), 1)  # private by default
        await accounts.set_visibility("acme/secret", "private")
        await registry.meta.link_blob("acme/secret", sha256(b"b"), 1)
        repos = {
            "private-default": "alice/secret",
            "private-explicit": "acme/secret",
            "missing": "alice/absent",
        }
        gate = auth.gate
        caller = Caller(ANONYMOUS, None, "127.0.0.1")

        async def answer(repo: str) -> tuple:
            need = Need("repository", repo, frozenset({"pull"}))
            try:
                await gate.authorize(caller, need, lambda: "http://registry/")
            except RegistryError as exc:
                detail = json.dumps(exc.to_json()).replace(repo, "REPO")
                return exc.status, detail, exc.headers["WWW-Authenticate"].replace(repo, "REPO")
            return (200,)

        for repo in repos.values():  # warm every cache and connection first
            await answer(repo)
        traced: list[str] = []
        held = registry.meta.runner._held  # the SQLite connections reads run on
        assert held
        for conn in held:
            conn.connection.driver_connection.set_trace_callback(traced.append)
        result = {}
        for number, (name, repo) in enumerate(repos.items()):
            # A commit first, so that nothing is answered from memory and the lookup itself
            # is traced (while nothing changes, a lookup asked again reads no statement).
            await registry.meta.link_blob(f"other/r{number}", sha256(b"%d" % number), 1)
            await asyncio.sleep(0)
            traced.clear()
            outcome = await answer(repo)
            namespace = repo.split("/")[0]
            statements = [
                (sql.replace(repo, "REPO").replace(f"'{namespace}'", "'NS'"), sql) for sql in traced
            ]
            samples = []
            for _ in range(2000):
                await asyncio.sleep(0)
                started = time.perf_counter()
                await answer(repo)
                samples.append(time.perf_counter() - started)
            result[name] = (statements, outcome, statistics.median(samples))
        for conn in held:
            conn.connection.driver_connection.set_trace_callback(None)
        return result


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_finding_16_the_single_lookup_answers_every_visibility_case(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The one statement gives the same answers the three lookups gave, on both databases."""
    metadata = None
    if backend == "postgresql":
        metadata = request.getfixturevalue("pg_cluster").create_database()
    settings = Settings(data_dir=tmp_path / "data", auth=True, metadata=metadata)
    expected = {
        "alice/secret": "private",  # the registry's default
        "alice/open": "public",  # its own setting
        "acme/site": "public",  # its namespace's default
        "acme/closed": "private",  # its own setting over the namespace's
        "alice/absent": None,
        "nobody/absent": None,
        "nobody/orphan": "private",  # a repository whose namespace has no account
    }
    assert asyncio.run(_visibilities(settings, list(expected))) == expected


async def _visibilities(settings: Settings, names: list[str]) -> dict[str, str | None]:
    async with open_registry(settings, create=True) as registry:  # a PostgreSQL schema too
        accounts = registry.accounts
        await accounts.create_user("alice", "alice-Pa55word")
        await accounts.create_org("acme", "alice")
        await accounts.set_namespace_default("acme", "public")
        for repo in ("alice/secret", "alice/open", "acme/site", "acme/closed", "nobody/orphan"):
            await registry.meta.link_blob(repo, sha256(repo.encode()), 1)
        await accounts.set_visibility("alice/open", "public")
        await accounts.set_visibility("acme/closed", "private")
        return {name: await accounts.visibility(name) for name in names}


# -- client compatibility (a) ------------------------------------------------------------------


def test_compat_a_token_lacking_a_scope_gets_401_insufficient_scope(reg: AuthRegistry) -> None:
    pull_only = reg.bearer(f"repository:{CI}:pull", basic(*CAROL))
    with reg.client() as http:
        response = http.post(f"/v2/{CI}/blobs/uploads/", headers={"Authorization": pull_only})
        assert response.status_code == 401, response.text
        assert code_of(response) == "UNAUTHORIZED"
        assert response.headers["WWW-Authenticate"] == reg.challenge(
            f"repository:{CI}:pull,push", "insufficient_scope"
        )
        deleting = http.delete(f"/v2/{CI}/manifests/v1", headers={"Authorization": pull_only})
        assert deleting.status_code == 401
        assert deleting.headers["WWW-Authenticate"] == reg.challenge(
            f"repository:{CI}:delete", "insufficient_scope"
        )
        # oras-py sends the same token once more and fetches a new one only after a 403: the
        # same token back for the same need on the same connection is told so (by any worker:
        # counted in the shared store).
        again = http.post(f"/v2/{CI}/blobs/uploads/", headers={"Authorization": pull_only})
        assert again.status_code == 403 and code_of(again) == "DENIED"
        assert again.headers["WWW-Authenticate"] == reg.challenge(
            f"repository:{CI}:pull,push", "insufficient_scope"
        )
        # Requests on other connections (a client's parallel ones) each get the 401.
        for _ in range(3):
            with reg.client() as parallel:
                other = parallel.post(
                    f"/v2/{CI}/blobs/uploads/", headers={"Authorization": pull_only}
                )
                assert other.status_code == 401, other.text
        # What the client then does: ask for the scope named, and go on.
        bigger = reg.bearer(f"repository:{CI}:pull,push", basic(*CAROL))
        started = http.post(f"/v2/{CI}/blobs/uploads/", headers={"Authorization": bigger})
        assert started.status_code == 202, started.text
        # A pull-only token reads the upload's status, as in Distribution; writes need push.
        status = http.get(started.headers["Location"], headers={"Authorization": pull_only})
        assert status.status_code == 204, status.text
        assert status.headers["Docker-Upload-UUID"] == started.headers["Docker-Upload-UUID"]
        patch = http.patch(
            started.headers["Location"], content=b"x", headers={"Authorization": pull_only}
        )
        assert patch.status_code == 403  # the same need as the POST's, refused before
        assert patch.headers["WWW-Authenticate"] == again.headers["WWW-Authenticate"]
        # An account that may not push stays DENIED: no token would help.
        reader = reg.bearer(f"repository:{WEB}:pull,push", basic(*CAROL))
        denied = http.post(f"/v2/{WEB}/blobs/uploads/", headers={"Authorization": reader})
        assert denied.status_code == 403 and code_of(denied) == "DENIED"


# -- client compatibility (b) ------------------------------------------------------------------


def test_compat_b_a_bare_catalog_request_is_challenged(reg: AuthRegistry) -> None:
    with reg.client() as http:
        bare = http.get("/v2/_catalog")
        assert bare.status_code == 401 and code_of(bare) == "UNAUTHORIZED"
        assert bare.headers["WWW-Authenticate"] == reg.challenge("registry:catalog:*")
        anonymous = reg.bearer("registry:catalog:*")
        listed = http.get("/v2/_catalog", headers={"Authorization": anonymous})
        assert listed.status_code == 200
        assert listed.json() == {"repositories": ["acme/site"]}
        as_carol = http.get("/v2/_catalog", headers={"Authorization": basic(*CAROL)})
        assert as_carol.json() == {"repositories": ["acme/site", WEB, CI]}


def peer(name: str) -> str:
    found = find_binary(name)
    assert found is not None, f"{name} is needed: {SHARED_PEERS}, DOCKYARD_PEERS_DIR or PATH"
    return found


def test_compat_b_crane_and_regctl_catalogs_list_private_repositories(
    reg: AuthRegistry, tmp_path: Path
) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "DOCKER_CONFIG": str(tmp_path / "docker")}
    env.pop("REGISTRY_AUTH_FILE", None)
    crane, regctl = peer("crane"), peer("regctl")
    # Logged out, only what anyone may see.
    anonymous = run([crane, "catalog", "--insecure", reg.host], env=env)
    assert anonymous.stdout.split() == ["acme/site"]
    run([crane, "auth", "login", reg.host, "-u", CAROL[0], "-p", CAROL[1]], env=env)
    listed = run([crane, "catalog", "--insecure", reg.host], env=env)
    assert listed.stdout.split() == ["acme/site", WEB, CI], listed.stdout
    # regctl reads docker's credentials too: its own, empty, home.
    env = {**env, "HOME": str(tmp_path / "regctl"), "DOCKER_CONFIG": str(tmp_path / "regctl")}
    run([regctl, "registry", "set", "--tls", "disabled", reg.host], env=env)
    anonymous = run([regctl, "repo", "ls", reg.host], env=env)
    assert anonymous.stdout.split() == ["acme/site"]
    run([regctl, "registry", "login", reg.host, "-u", DAVE[0], "-p", DAVE[1]], env=env)
    listed = run([regctl, "repo", "ls", reg.host], env=env)
    assert listed.stdout.split() == ["acme/site", WEB], listed.stdout
