"""The authorization matrix: every principal, operation and repository, each cell asserted.

Principals: anonymous, the owner, a maintainer and a reader of the organisation `acme`, a user
with no role there, the administrator, personal access tokens of the owner with each scope, a
revoked and an expired token. Operations: pull (GET manifest), push (blob upload + PUT
manifest), delete (DELETE manifest), catalog. Repositories: a public and a private one in
`acme/`, and a private one in the owner's own namespace.

Every cell is driven twice, the way real clients do it: a bearer token from `/token` (Basic
credentials, the scope the operation needs) sent to the API; and Basic credentials sent to the
API directly. A refusal is asserted exactly: a repository the caller cannot see answers exactly
as a repository that does not exist does (401 UNAUTHORIZED with a Bearer challenge naming the
scope: no existence leak); one the caller sees but may not change answers 403 DENIED.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

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

ORG = "acme"
PUBLIC, PRIVATE, PERSONAL = "acme/public-app", "acme/private-app", "owen/personal"
REPOS = {"public": PUBLIC, "private": PRIVATE, "personal": PERSONAL}
# Never created, in the same namespace and of the same length (so that even Content-Length
# must match): what a repository the caller may not see must look like.
MISSING = {"public": "acme/absent-app", "private": "acme/missing-app", "personal": "owen/notthere"}
assert all(len(MISSING[kind]) == len(repo) for kind, repo in REPOS.items())

PASSWORDS = {"owen": "owen-pw-1", "mia": "mia-pw-2", "rita": "rita-pw-3", "otto": "otto-pw-4"}

ALL = frozenset({"pull", "push", "delete"})
RW = frozenset({"pull", "push"})
R = frozenset({"pull"})
NONE: frozenset[str] = frozenset()

# What each principal may do, per repository: (public, private, personal).
ALLOWED: dict[str, tuple[frozenset[str], ...]] = {
    "anonymous": (R, NONE, NONE),
    "owner": (ALL, ALL, ALL),  # owen: owner of acme; personal is his own namespace
    "maintainer": (ALL, ALL, NONE),  # mia
    "reader": (R, R, NONE),  # rita
    "other": (R, NONE, NONE),  # otto: no role in acme
    "admin": (ALL, ALL, ALL),
    "token-read": (R, R, R),  # owen's tokens: never more than their scope
    "token-write": (RW, RW, RW),
    "token-delete": (ALL, ALL, ALL),
}
BAD_CREDENTIALS = ("token-revoked", "token-expired")
PRINCIPALS = [*ALLOWED, *BAD_CREDENTIALS]
KINDS = ("public", "private", "personal")
MODES = ("bearer", "basic")
OPERATIONS = ("pull", "push", "delete")
TOKEN_SCOPES = {"pull": "pull", "push": "pull,push", "delete": "delete"}


def allowed(principal: str, kind: str) -> frozenset[str]:
    return ALLOWED[principal][KINDS.index(kind)] if principal in ALLOWED else NONE


def expected_catalog(principal: str) -> list[str]:
    return sorted(REPOS[kind] for kind in KINDS if "pull" in allowed(principal, kind))


@dataclass
class World:
    reg: AuthRegistry
    http: httpx.Client
    credentials: dict[str, tuple[str, str] | None] = field(default_factory=dict)
    pulled: dict[str, bytes] = field(default_factory=dict)  # kind -> manifest under tag v1
    delete_targets: dict[tuple[str, str, str], str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def world(start_auth_registry: Callable[..., AuthRegistry]) -> Iterator[World]:
    reg = start_auth_registry()
    for name, password in PASSWORDS.items():
        reg.add_user(name, password)
    expired = reg.create_token("owen", "expired", "delete", "--expires", "1s")
    expires_at = time.time() + 1
    reg.admin("org", "create", ORG, "--owner", "owen")
    reg.admin("org", "add-member", ORG, "mia", "--role", "maintainer")
    reg.admin("org", "add-member", ORG, "rita", "--role", "reader")
    credentials: dict[str, tuple[str, str] | None] = {
        "anonymous": None,
        "owner": ("owen", PASSWORDS["owen"]),
        "maintainer": ("mia", PASSWORDS["mia"]),
        "reader": ("rita", PASSWORDS["rita"]),
        "other": ("otto", PASSWORDS["otto"]),
        "admin": ("admin", ADMIN_PASSWORD),
        "token-expired": ("owen", expired),
    }
    for scope in ("read", "write", "delete"):
        credentials[f"token-{scope}"] = ("owen", reg.create_token("owen", scope, scope))
    credentials["token-revoked"] = ("owen", reg.create_token("owen", "revoked", "delete"))
    reg.admin("token", "revoke", "revoked", "--user", "owen")

    with reg.client() as http:
        world = World(reg, http, credentials)
        for kind, repo in REPOS.items():
            _, world.pulled[kind] = push_image(http, repo, "v1", kind=kind)
            # One manifest per delete cell, so each cell deletes (or fails to) its own.
            config = config_blob()
            assert upload_blob(http, repo, config, admin_auth()).status_code == 201
            for principal in PRINCIPALS:
                for mode in MODES:
                    body = manifest_for(config, cell=f"{principal}/{mode}")
                    response = put_manifest(http, repo, sha256(body), body, admin_auth())
                    assert response.status_code == 201, response.text
                    world.delete_targets[principal, kind, mode] = sha256(body)
        reg.admin("repo", "visibility", PUBLIC, "public")
        time.sleep(max(0.0, expires_at + 0.2 - time.time()))
        yield world


# -- how a client gets its Authorization header ----------------------------------------------


def authorization(world: World, principal: str, mode: str, scope: str) -> str | None:
    """The header a client sends for `scope`; None when anonymous. For revoked and expired
    tokens the token endpoint must refuse (asserted here) and pytest.skip is NOT used: the
    caller checks `principal in BAD_CREDENTIALS` first."""
    credentials = world.credentials[principal]
    login = basic(*credentials) if credentials else None
    if mode == "basic":
        return login
    response = world.reg.token_response(scope, login)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return "Bearer " + response.json()["token"]


def assert_token_refused(world: World, principal: str, scope: str) -> None:
    credentials = world.credentials[principal]
    assert credentials is not None
    response = world.reg.token_response(scope, basic(*credentials))
    assert response.status_code == 401, response.text
    assert code_of(response) == "UNAUTHORIZED"
    assert "token" not in response.json()


def assert_bad_credentials(world: World, response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert code_of(response) == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == world.reg.challenge()


def assert_same_answer(
    hidden: httpx.Response, missing: httpx.Response, hidden_repo: str, missing_repo: str
) -> None:
    """The answer about a repository the caller may not see is the answer about a repository
    that does not exist, byte for byte once the names are swapped."""
    assert hidden.status_code == missing.status_code
    assert hidden.content == missing.content.replace(missing_repo.encode(), hidden_repo.encode())
    for header in ("WWW-Authenticate", "Content-Type", "Content-Length"):
        assert hidden.headers.get(header) == (
            missing.headers.get(header, "").replace(missing_repo, hidden_repo) or None
        ), header


def assert_refused(
    world: World,
    principal: str,
    kind: str,
    mode: str,
    actions: str,
    response: httpx.Response,
    on_missing: Callable[[str], httpx.Response],
) -> None:
    """`actions`: the scope actions the request needs, as the challenge must name them."""
    repo = REPOS[kind]
    if principal in BAD_CREDENTIALS:
        assert_bad_credentials(world, response)
        return
    visible = "pull" in allowed(principal, kind)
    if visible and principal != "anonymous":
        assert response.status_code == 403, response.text
        assert code_of(response) == "DENIED"
        return
    assert response.status_code == 401, response.text
    assert code_of(response) == "UNAUTHORIZED"
    error = "insufficient_scope" if mode == "bearer" else None
    assert response.headers["WWW-Authenticate"] == world.reg.challenge(
        f"repository:{repo}:{actions}", error
    )
    assert_same_answer(response, on_missing(MISSING[kind]), repo, MISSING[kind])


def cell_ids(*dimensions: tuple[str, ...]) -> list[tuple[str, ...]]:
    cells: list[tuple[str, ...]] = [()]
    for dimension in dimensions:
        cells = [(*cell, value) for cell in cells for value in dimension]
    return cells


def ident(cell: tuple[str, ...]) -> str:
    return "-".join(cell)


REPO_CELLS = cell_ids(tuple(PRINCIPALS), KINDS, MODES)


# -- pull -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("principal", "kind", "mode"), REPO_CELLS, ids=map(ident, REPO_CELLS))
def test_pull(world: World, principal: str, kind: str, mode: str) -> None:
    repo = REPOS[kind]
    scope = f"repository:{repo}:pull"
    if principal in BAD_CREDENTIALS and mode == "bearer":
        assert_token_refused(world, principal, scope)
        return
    auth = authorization(world, principal, mode, scope)
    response = get_manifest(world.http, repo, "v1", auth)
    if "pull" in allowed(principal, kind):
        assert response.status_code == 200, response.text
        assert response.content == world.pulled[kind]
        assert response.headers["Content-Type"] == OCI_MANIFEST
        return

    def on_missing(missing: str) -> httpx.Response:
        missing_auth = authorization(world, principal, mode, f"repository:{missing}:pull")
        return get_manifest(world.http, missing, "v1", missing_auth)

    assert_refused(world, principal, kind, mode, "pull", response, on_missing)


# -- push -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("principal", "kind", "mode"), REPO_CELLS, ids=map(ident, REPO_CELLS))
def test_push(world: World, principal: str, kind: str, mode: str) -> None:
    repo = REPOS[kind]
    scope = f"repository:{repo}:pull,push"
    if principal in BAD_CREDENTIALS and mode == "bearer":
        assert_token_refused(world, principal, scope)
        return
    auth = authorization(world, principal, mode, scope)
    config = config_blob()
    body = manifest_for(config)
    tag = f"pushed-{principal}-{mode}"
    uploaded = upload_blob(world.http, repo, config, auth)
    put = put_manifest(world.http, repo, tag, body, auth)
    if "push" in allowed(principal, kind):
        assert uploaded.status_code == 201, uploaded.text
        assert put.status_code == 201, put.text
        assert put.headers["Docker-Content-Digest"] == sha256(body)
        assert get_manifest(world.http, repo, tag, admin_auth()).content == body
        return

    def upload_missing(missing: str) -> httpx.Response:
        missing_auth = authorization(world, principal, mode, f"repository:{missing}:pull,push")
        return upload_blob(world.http, missing, config, missing_auth)

    def put_missing(missing: str) -> httpx.Response:
        missing_auth = authorization(world, principal, mode, f"repository:{missing}:pull,push")
        return put_manifest(world.http, missing, tag, body, missing_auth)

    assert_refused(world, principal, kind, mode, "pull,push", uploaded, upload_missing)
    assert_refused(world, principal, kind, mode, "pull,push", put, put_missing)
    # Nothing was stored.
    assert get_manifest(world.http, repo, tag, admin_auth()).status_code == 404
    head = world.http.head(
        f"/v2/{repo}/blobs/{sha256(config)}", headers={"Authorization": admin_auth()}
    )
    assert head.status_code == 404


# -- delete ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("principal", "kind", "mode"), REPO_CELLS, ids=map(ident, REPO_CELLS))
def test_delete(world: World, principal: str, kind: str, mode: str) -> None:
    repo = REPOS[kind]
    scope = f"repository:{repo}:delete"
    if principal in BAD_CREDENTIALS and mode == "bearer":
        assert_token_refused(world, principal, scope)
        return
    digest = world.delete_targets[principal, kind, mode]
    auth = authorization(world, principal, mode, scope)
    headers = {"Authorization": auth} if auth else {}
    response = world.http.delete(f"/v2/{repo}/manifests/{digest}", headers=headers)
    still_there = get_manifest(world.http, repo, digest, admin_auth()).status_code
    if "delete" in allowed(principal, kind):
        assert response.status_code == 202, response.text
        assert still_there == 404
        return

    def on_missing(missing: str) -> httpx.Response:
        missing_auth = authorization(world, principal, mode, f"repository:{missing}:delete")
        missing_headers = {"Authorization": missing_auth} if missing_auth else {}
        return world.http.delete(f"/v2/{missing}/manifests/{digest}", headers=missing_headers)

    assert_refused(world, principal, kind, mode, "delete", response, on_missing)
    assert still_there == 200


# -- catalog --------------------------------------------------------------------------------

CATALOG_CELLS = cell_ids(tuple(PRINCIPALS), MODES)


@pytest.mark.parametrize(("principal", "mode"), CATALOG_CELLS, ids=map(ident, CATALOG_CELLS))
def test_catalog(world: World, principal: str, mode: str) -> None:
    scope = "registry:catalog:*"
    if principal in BAD_CREDENTIALS:
        if mode == "bearer":
            assert_token_refused(world, principal, scope)
        else:
            credentials = world.credentials[principal]
            assert credentials is not None
            response = world.http.get(
                "/v2/_catalog", headers={"Authorization": basic(*credentials)}
            )
            assert_bad_credentials(world, response)
        return
    auth = authorization(world, principal, mode, scope)
    response = world.http.get("/v2/_catalog", headers={"Authorization": auth} if auth else {})
    if auth is None:
        # Challenged first, as docker-style clients expect before they send credentials; an
        # anonymous token (the bearer cell) still lists the public repositories.
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == world.reg.challenge(scope)
        return
    assert response.status_code == 200, response.text
    assert response.json() == {"repositories": expected_catalog(principal)}


def test_catalog_needs_a_catalog_scope_in_the_token(world: World) -> None:
    """A bearer token without `registry:catalog:*` is asked for one."""
    auth = authorization(world, "owner", "bearer", f"repository:{PUBLIC}:pull")
    response = world.http.get("/v2/_catalog", headers={"Authorization": auth})
    assert response.status_code == 401
    assert code_of(response) == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == world.reg.challenge(
        "registry:catalog:*", "insufficient_scope"
    )


def test_catalog_pages_do_not_name_hidden_repositories(world: World) -> None:
    """Paging (`n`, `last`, `Link`) must not reveal a private name to someone who may not see
    it: acme/private-app sorts between acme/public-app... and owen/personal."""
    for principal in ("anonymous", "other"):
        mode = "bearer" if principal == "anonymous" else "basic"
        auth = authorization(world, principal, mode, "registry:catalog:*")
        headers = {"Authorization": auth} if auth else {}
        seen: list[str] = []
        url: str | None = "/v2/_catalog?n=1"
        pages = 0
        while url is not None and pages < 10:
            response = world.http.get(url, headers=headers)
            assert response.status_code == 200, response.text
            seen += response.json()["repositories"]
            link = response.headers.get("Link")
            url = link.split(">")[0].lstrip("<") if link else None
            if url is not None:
                named = httpx.URL(url).params.get("last")
                assert named not in (PRIVATE, PERSONAL), (principal, link)
            pages += 1
        assert seen == expected_catalog(principal), principal


# -- every other endpoint answers a hidden repository as a missing one ------------------------


@pytest.mark.parametrize("principal", ["anonymous", "other"])
def test_hidden_repository_is_a_missing_one_on_every_endpoint(world: World, principal: str) -> None:
    digest = sha256(world.pulled["private"])
    credentials = world.credentials[principal]
    headers = {"Authorization": basic(*credentials)} if credentials else {}
    requests = [
        ("GET", "/v2/{}/tags/list"),
        ("GET", "/v2/{}/manifests/v1"),
        ("HEAD", "/v2/{}/manifests/v1"),
        ("GET", f"/v2/{{}}/manifests/{digest}"),
        ("GET", f"/v2/{{}}/blobs/{digest}"),
        ("HEAD", f"/v2/{{}}/blobs/{digest}"),
        ("DELETE", f"/v2/{{}}/blobs/{digest}"),
        ("GET", f"/v2/{{}}/referrers/{digest}"),
        ("POST", "/v2/{}/blobs/uploads/"),
        ("GET", "/v2/{}/blobs/uploads/0123456789abcdef"),
    ]
    for method, template in requests:
        hidden = world.http.request(method, template.format(PRIVATE), headers=headers)
        missing = world.http.request(method, template.format(MISSING["private"]), headers=headers)
        assert hidden.status_code == 401, (method, template, hidden.text)
        assert_same_answer(hidden, missing, PRIVATE, MISSING["private"])


def test_token_endpoint_grants_the_same_for_hidden_and_missing(world: World) -> None:
    """The token endpoint is a side door too: it must grant nothing either way, identically."""
    for principal in ("anonymous", "other"):
        credentials = world.credentials[principal]
        auth = basic(*credentials) if credentials else None
        for actions in ("pull", "pull,push", "delete"):
            hidden = world.reg.token_response(f"repository:{PRIVATE}:{actions}", auth)
            missing = world.reg.token_response(f"repository:{MISSING['private']}:{actions}", auth)
            assert hidden.status_code == missing.status_code == 200
            assert hidden.json()["scope"] == missing.json()["scope"] == ""
