"""Authentication against real CNCF Distribution: htpasswd Basic and Bearer through a real
token service (tests/support/token_server.py) whose JWTs Distribution verifies."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.cli.exits import exit_code
from dockyard.client.auth import (
    SCOPES_EXTENSION,
    merge_scopes,
    parse_challenges,
    scopes_for,
)
from dockyard.client.credentials import Credentials
from dockyard.client.errors import Denied, Unauthorized
from dockyard.client.image import Manifest
from dockyard.client.registry import RegistryClient
from dockyard.core import mediatypes as mt
from dockyard.core.manifest import Descriptor
from tests.support.auth_peers import token_distribution
from tests.support.peers import Distribution
from tests.support.token_server import TokenServer

USERS = {"alice": "wonder-land-7", "bob": "builder-42"}
ALICE = Credentials("alice", USERS["alice"])
LAYER = "application/vnd.oci.image.layer.v1.tar"


def run(coro):
    return asyncio.run(coro)


def repo() -> str:
    return f"auth/{uuid.uuid4().hex[:10]}"


def blob(data: bytes) -> Descriptor:
    return Descriptor(LAYER, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def opener(data: bytes):
    async def stream(offset: int):
        yield data[offset:]

    return stream


def small_image() -> tuple[bytes, bytes, Manifest]:
    layer, config = os.urandom(700), b'{"architecture":"amd64","os":"linux"}'
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, **_ds(config)},
            "layers": [{"mediaType": LAYER, **_ds(layer)}],
        }
    ).encode()
    return (
        layer,
        config,
        Manifest(body, mt.OCI_MANIFEST, "sha256:" + hashlib.sha256(body).hexdigest()),
    )


def _ds(data: bytes) -> dict:
    return {"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


async def push_small(c: RegistryClient, name: str, tag: str = "v1") -> Manifest:
    layer, config, manifest = small_image()
    for data in (layer, config):
        await c.upload_blob(name, blob(data), opener(data))
    await c.put_manifest(name, tag, manifest)
    return manifest


# -- parsing (pure) ----------------------------------------------------------------------


def test_parse_challenges() -> None:
    [bearer] = parse_challenges(
        [
            'Bearer realm="https://auth.example/token",'
            'service="registry.example",scope="repository:a/b:pull,push",'
            'error="insufficient_scope"'
        ]
    )
    assert bearer.scheme == "bearer"
    assert bearer.params["realm"] == "https://auth.example/token"
    assert bearer.scopes == {"repository:a/b:pull,push"} and bearer.insufficient_scope
    basic, other = parse_challenges(['Basic realm="basic-realm", Bearer realm="x\\"y"'])
    assert (basic.scheme, basic.params) == ("basic", {"realm": "basic-realm"})
    assert other.params["realm"] == 'x"y'


def test_scopes_derived_from_requests() -> None:
    def scopes(method: str, url: str, **ext: object) -> tuple[str, ...]:
        return scopes_for(httpx.Request(method, "https://r.example" + url, extensions=ext))

    assert scopes("GET", "/v2/a/b/manifests/1.0") == ("repository:a/b:pull",)
    assert scopes("HEAD", "/v2/a/blobs/sha256:00") == ("repository:a:pull",)
    assert scopes("PUT", "/v2/a/b/manifests/1.0") == ("repository:a/b:pull,push",)
    assert scopes("PATCH", "/v2/x/blobs/uploads/u1?_state=s") == ("repository:x:pull,push",)
    assert scopes("DELETE", "/v2/x/manifests/sha256:00") == ("repository:x:delete",)
    assert scopes("POST", "/v2/dst/blobs/uploads/?mount=sha256:00&from=src/one") == (
        "repository:dst:pull,push",
        "repository:src/one:pull",
    )
    assert scopes("GET", "/v2/_catalog?n=10") == ("registry:catalog:*",)
    assert scopes("GET", "/v2/") == ()
    assert scopes("PUT", "/v2/a/manifests/x", **{SCOPES_EXTENSION: ["repository:a:pull"]}) == (
        "repository:a:pull",
    )
    assert merge_scopes(["repository:a:push", "repository:a:pull", "repository:b:pull"]) == (
        "repository:a:pull,push",
        "repository:b:pull",
    )


# -- Basic -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    with Distribution(tmp_path_factory.mktemp("basic"), users=USERS) as server:
        yield server


def test_basic_auth_push_and_pull(basic_registry: Distribution) -> None:
    name = repo()

    async def go() -> None:
        async with RegistryClient(basic_registry.host, credentials=ALICE) as c:
            assert await c.ping() == "basic"
            manifest = await push_small(c, name)
            assert await c.get_manifest(name, "v1") == manifest
            assert await c.list_tags(name) == ["v1"]
            assert await c.check_login() is None

    run(go())


def test_basic_auth_wrong_password_and_anonymous(basic_registry: Distribution) -> None:
    wrong = Credentials("alice", "not-the-password-xyz")

    async def wrong_password() -> None:
        async with RegistryClient(basic_registry.host, credentials=wrong) as c:
            await c.list_tags("auth/anything")

    with pytest.raises(Unauthorized) as caught:
        run(wrong_password())
    assert "not-the-password-xyz" not in str(caught.value)
    assert f"dockyard login {basic_registry.host}" in str(caught.value)
    assert exit_code(caught.value) == 4  # what `dockyard` exits with

    async def anonymous() -> None:
        async with RegistryClient(basic_registry.host) as c:
            await c.list_tags("auth/anything")

    with pytest.raises(Unauthorized, match="requires authentication"):
        run(anonymous())

    async def login() -> None:
        async with RegistryClient(basic_registry.host, credentials=wrong) as c:
            await c.check_login()

    with pytest.raises(Unauthorized, match=r"login to .* failed") as caught:
        run(login())
    assert "not-the-password-xyz" not in str(caught.value)


# -- Bearer ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bearer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Distribution, TokenServer]]:
    with token_distribution(tmp_path_factory.mktemp("bearer"), USERS, read_only={"bob"}) as pair:
        yield pair


def test_bearer_push_pull_with_exact_scopes_and_cache(
    bearer: tuple[Distribution, TokenServer],
) -> None:
    server, tokens = bearer
    name, copy = repo(), repo()
    layer = os.urandom(900)

    async def go() -> None:
        async with RegistryClient(server.host, credentials=ALICE) as c:
            assert await c.ping() == "bearer"
            before = len(tokens.requests)
            manifest = await push_small(c, name)
            push_requests = tokens.requests[before:]
            # One token for the whole push: push covers the HEADs and GETs that follow.
            assert [r["scopes"] for r in push_requests] == [[f"repository:{name}:pull,push"]]
            assert push_requests[0]["grant"] == "basic"
            assert push_requests[0]["account"] == "alice"
            assert push_requests[0]["service"] == tokens.service
            assert await c.get_manifest(name, "v1") == manifest
            assert len(tokens.requests) == before + 1
            # A cross-repository mount asks for both repositories in one token.
            await c.upload_blob(name, blob(layer), opener(layer))
            assert await c.mount_blob(copy, blob(layer).digest, name) is True
            assert sorted(tokens.requests[-1]["scopes"]) == sorted(
                [f"repository:{copy}:pull,push", f"repository:{name}:pull"]
            )

    run(go())


def test_bearer_anonymous_and_read_only(bearer: tuple[Distribution, TokenServer]) -> None:
    server, tokens = bearer
    name = repo()

    async def setup() -> None:
        async with RegistryClient(server.host, credentials=ALICE) as c:
            await push_small(c, name)

    run(setup())

    async def anonymous_pull_then_push() -> None:
        async with RegistryClient(server.host) as c:
            assert await c.list_tags(name) == ["v1"]
            assert tokens.requests[-1]["grant"] == "anonymous"
            await push_small(c, name, "v2")

    with pytest.raises(Unauthorized, match=f"run `dockyard login {server.host}`"):
        run(anonymous_pull_then_push())

    async def read_only_push() -> None:
        async with RegistryClient(server.host, credentials=Credentials("bob", USERS["bob"])) as c:
            assert await c.list_tags(name) == ["v1"]
            await push_small(c, name, "v3")

    with pytest.raises(Unauthorized) as caught:
        run(read_only_push())
    assert not isinstance(caught.value, Denied) or "denied" in str(caught.value)
    assert USERS["bob"] not in str(caught.value)


def test_bearer_wrong_password_never_shown(bearer: tuple[Distribution, TokenServer]) -> None:
    server, _ = bearer

    async def go() -> None:
        async with RegistryClient(
            server.host, credentials=Credentials("alice", "hunter2-wrong")
        ) as c:
            await c.list_tags("auth/x")

    with pytest.raises(Unauthorized, match="rejected the credentials of alice") as caught:
        run(go())
    assert "hunter2-wrong" not in str(caught.value)


def test_insufficient_scope_is_retried_once(bearer: tuple[Distribution, TokenServer]) -> None:
    server, tokens = bearer
    name = repo()

    async def go() -> None:
        layer, config, manifest = small_image()
        async with RegistryClient(server.host, credentials=ALICE) as c:
            for data in (layer, config):
                await c.upload_blob(name, blob(data), opener(data))
        async with RegistryClient(server.host, credentials=ALICE) as c:
            await c.ping()
            before = len(tokens.requests)
            # Ask for a pull-only token for a PUT: the registry says insufficient_scope and
            # names the scope it wants; the flow fetches that and retries.
            response = await c.http.put(
                f"/v2/{name}/manifests/v1",
                content=manifest.body,
                headers={"Content-Type": manifest.media_type},
                extensions={SCOPES_EXTENSION: [f"repository:{name}:pull"]},
            )
            assert response.status_code == 201
            scopes = [r["scopes"] for r in tokens.requests[before:]]
            assert scopes[0] == [f"repository:{name}:pull"]
            assert "push" in scopes[-1][0] and len(scopes) == 2

    run(go())


def test_short_lived_tokens_are_fetched_again(tmp_path: Path) -> None:
    with token_distribution(tmp_path, USERS, expires_in=1) as (server, tokens):
        name = repo()

        async def go() -> None:
            async with RegistryClient(server.host, credentials=ALICE) as c:
                await push_small(c, name)
                before = len(tokens.requests)
                await c.list_tags(name)
                await c.list_tags(name)
                assert len(tokens.requests) == before + 2

        run(go())


def test_identity_token_uses_oauth2_refresh_grant(tmp_path: Path) -> None:
    with token_distribution(tmp_path, USERS, token_key="access_token") as (server, tokens):
        name = repo()

        async def go() -> None:
            async with RegistryClient(server.host, credentials=ALICE) as c:
                refresh = await c.check_login()
            assert refresh and tokens.requests[-1]["grant"] == "basic"
            async with RegistryClient(
                server.host, credentials=Credentials(identity_token=refresh)
            ) as c:
                await push_small(c, name)
                assert await c.list_tags(name) == ["v1"]
            grants = {r["grant"] for r in tokens.requests[1:]}
            assert grants == {"refresh_token"}

        run(go())


def test_password_grant_when_token_service_refuses_get(tmp_path: Path) -> None:
    with token_distribution(tmp_path, USERS, refuse_get=True) as (server, tokens):
        name = repo()

        async def go() -> None:
            async with RegistryClient(server.host, credentials=ALICE) as c:
                await push_small(c, name)
                assert await c.list_tags(name) == ["v1"]

        run(go())
        assert {r["grant"] for r in tokens.issued()} == {"password"}
