"""`/api/v1/repositories/NAME` GET and PATCH: a repository's description and README, read as a
pull is allowed and written as a push is, and attacked: other accounts, narrower tokens,
other sites, oversized and malformed bodies, concurrent edits."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.auth.conftest import start_auth_registry  # noqa: F401 - the module's registries
from tests.auth.helpers import AuthRegistry, admin_auth, basic, code_of, push_image

ALICE, BOB, CAROL, DAVE = (
    ("alice", "alice-Pa55word"),
    ("bob", "bob-Pa55word"),
    ("carol", "carol-Pa55word"),
    ("dave", "dave-Pa55word"),
)
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:  # noqa: F811
    registry = start_auth_registry()
    for user, password in (ALICE, BOB, CAROL, DAVE):
        registry.add_user(user, password)
    registry.admin("org", "create", "acme", "--owner", "alice")
    registry.admin("org", "add-member", "acme", "carol", "--role", "maintainer")
    registry.admin("org", "add-member", "acme", "dave", "--role", "reader")
    with registry.client() as c:
        push_image(c, "alice/app", "v1", basic(*ALICE))
        push_image(c, "acme/api", "v1", basic(*ALICE))
    return registry


def info(c: httpx.Client, name: str, auth: str | None = None) -> httpx.Response:
    return c.get(f"/api/v1/repositories/{name}", headers={"Authorization": auth} if auth else {})


def patch(
    c: httpx.Client, name: str, body: object, auth: str | None, **headers: str
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return c.patch(
        f"/api/v1/repositories/{name}",
        content=content,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": auth} if auth else {}),
            **headers,
        },
    )


def test_the_owner_writes_and_anyone_allowed_to_pull_reads(reg: AuthRegistry) -> None:
    with reg.client() as c:
        fresh = info(c, "alice/app", basic(*ALICE))
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["description"] == "" and fresh.json()["readme"] == ""
        assert fresh.json()["visibility"] == "private" and fresh.json()["tags"] == 1
        readme = '# App\n\n<script>alert(1)</script>\n\n<a href="javascript:alert(2)">x</a>\n'
        written = patch(
            c, "alice/app", {"description": "A web app", "readme": readme}, basic(*ALICE)
        )
        assert written.status_code == 200, written.text
        body = info(c, "alice/app", basic(*ALICE)).json()
        assert body["description"] == "A web app" and body["readme"] == readme
        assert "<h1>App</h1>" in body["readme_html"]
        assert "<script" not in body["readme_html"] and "javascript:" not in body["readme_html"]
        assert body["updated_at"] is not None
        # One field leaves the other.
        assert (
            patch(c, "alice/app", {"description": "Still an app"}, basic(*ALICE)).json()["readme"]
            == readme
        )


def test_others_see_a_private_repository_as_missing(reg: AuthRegistry) -> None:
    with reg.client() as c:
        for auth in (basic(*BOB), None):
            hidden, missing = info(c, "alice/app", auth), info(c, "alice/nothing", auth)
            assert hidden.status_code == missing.status_code == 401
            # The same answer, naming what was asked for (as /v2/ does).
            assert hidden.text.replace("alice/app", "alice/nothing") == missing.text
            assert (
                hidden.headers["www-authenticate"].replace("alice/app", "alice/nothing")
                == missing.headers["www-authenticate"]
            )
            assert patch(c, "alice/app", {"description": "mine"}, auth).status_code == 401
        # The owner asking for a repository that does not exist: NOT_FOUND.
        assert code_of(info(c, "alice/nothing", basic(*ALICE))) == "NOT_FOUND"
        reg.admin("repo", "visibility", "alice/app", "public")
        try:
            assert info(c, "alice/app").status_code == 200
            assert info(c, "alice/app", basic(*BOB)).json()["visibility"] == "public"
            refused = patch(c, "alice/app", {"description": "mine"}, basic(*BOB))
            assert refused.status_code == 403 and code_of(refused) == "DENIED"
            assert patch(c, "alice/app", {"description": "mine"}, None).status_code == 401
        finally:
            reg.admin("repo", "visibility", "alice/app", "private")
        assert info(c, "alice/app").status_code == 401
        assert info(c, "alice/app", admin_auth()).json()["description"] != "mine"


def test_roles_and_token_scopes_decide_who_writes(reg: AuthRegistry) -> None:
    with reg.client() as c:
        assert patch(c, "acme/api", {"description": "by carol"}, basic(*CAROL)).status_code == 200
        assert info(c, "acme/api", basic(*DAVE)).json()["description"] == "by carol"
        refused = patch(c, "acme/api", {"description": "by dave"}, basic(*DAVE))
        assert refused.status_code == 403 and code_of(refused) == "DENIED"
        read_token = reg.create_token("alice", "ro", "read")
        write_token = reg.create_token("alice", "rw", "write")
        assert info(c, "acme/api", basic("alice", read_token)).status_code == 200
        refused = patch(c, "acme/api", {"description": "ro"}, basic("alice", read_token))
        assert refused.status_code == 403 and code_of(refused) == "DENIED"
        assert "scope" in refused.json()["errors"][0]["message"]
        # A bearer token from /token carries only what it was issued for.
        pull_only = reg.bearer("repository:acme/api:pull", basic(*ALICE))
        assert info(c, "acme/api", pull_only).status_code == 200
        assert patch(c, "acme/api", {"description": "b"}, pull_only).status_code == 401
        pushing = reg.bearer("repository:acme/api:pull,push", basic(*ALICE))
        assert patch(c, "acme/api", {"description": "b"}, pushing).status_code == 200
        assert (
            patch(c, "acme/api", {"description": "rw"}, basic("alice", write_token)).json()[
                "description"
            ]
            == "rw"
        )


def test_requests_from_other_sites_are_refused(reg: AuthRegistry) -> None:
    with reg.client() as c:
        refused = patch(
            c, "alice/app", {"description": "x"}, basic(*ALICE), Origin="https://evil.example"
        )
        assert refused.status_code == 403 and code_of(refused) == "DENIED"
        assert info(c, "alice/app", basic(*ALICE)).json()["description"] != "x"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "BAD_REQUEST"),
        (b"[]", "application/json", 400, "BAD_REQUEST"),
        (b"{}", "application/json", 400, "BAD_REQUEST"),
        (b'{"readme": 5}', "application/json", 400, "BAD_REQUEST"),
        (b'{"readme": null}', "application/json", 400, "BAD_REQUEST"),
        (b'{"visibility": "public"}', "application/json", 400, "BAD_REQUEST"),
        (b'{"description": "two\\nlines"}', "application/json", 400, "BAD_REQUEST"),
        (b'{"description": "' + b"x" * 201 + b'"}', "application/json", 400, "BAD_REQUEST"),
        (b'{"readme": "nul \\u0000"}', "application/json", 400, "BAD_REQUEST"),
        (b'{"readme": "lone \\ud800"}', "application/json", 400, "BAD_REQUEST"),
        (b'{"readme": "x"}', "text/plain", 415, "UNSUPPORTED"),
        (b"[" * 100_000, "application/json", 400, "BAD_REQUEST"),
    ],
)
def test_malformed_bodies_are_refused(
    reg: AuthRegistry, body: bytes, content_type: str, status: int, code: str
) -> None:
    with reg.client() as c:
        before = info(c, "alice/app", basic(*ALICE)).json()
        answer = c.patch(
            "/api/v1/repositories/alice/app",
            content=body,
            headers={"Content-Type": content_type, "Authorization": basic(*ALICE)},
        )
        assert (answer.status_code, code_of(answer)) == (status, code), answer.text
        assert info(c, "alice/app", basic(*ALICE)).json() == before


def test_a_readme_is_at_most_one_mebibyte(reg: AuthRegistry) -> None:
    with reg.client() as c:
        largest = "é" * (MiB // 2)  # two bytes of UTF-8 each
        assert patch(c, "alice/app", {"readme": largest}, basic(*ALICE)).status_code == 200
        too_large = patch(c, "alice/app", {"readme": largest + "x"}, basic(*ALICE))
        assert too_large.status_code == 413 and code_of(too_large) == "UNSUPPORTED"
        huge = c.patch(
            "/api/v1/repositories/alice/app",
            content=b'{"readme": "' + b"x" * (8 * MiB) + b'"}',
            headers={"Content-Type": "application/json", "Authorization": basic(*ALICE)},
        )
        assert huge.status_code == 413
        assert info(c, "alice/app", basic(*ALICE)).json()["readme"] == largest
        patch(c, "alice/app", {"readme": "# App\n"}, basic(*ALICE))


def test_concurrent_edits_of_different_fields_both_stay(reg: AuthRegistry) -> None:
    def edit(n: int) -> int:
        with reg.client() as c:
            field = "description" if n % 2 else "readme"
            return patch(c, "acme/api", {field: f"{field} {n}"}, basic(*ALICE)).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(edit, range(16))) == {200}
    with reg.client() as c:
        body = info(c, "acme/api", basic(*ALICE)).json()
    assert body["description"].startswith("description ") and body["readme"].startswith("readme ")


def test_deleting_the_repository_takes_its_description(reg: AuthRegistry) -> None:
    with reg.client() as c:
        push_image(c, "alice/gone", "v1", basic(*ALICE))
        assert (
            patch(c, "alice/gone", {"description": "soon gone"}, basic(*ALICE)).status_code == 200
        )
        deleted = c.delete(
            "/api/v1/repositories/alice/gone", headers={"Authorization": basic(*ALICE)}
        )
        assert deleted.status_code == 200, deleted.text
        assert code_of(info(c, "alice/gone", basic(*ALICE))) == "NOT_FOUND"
        push_image(c, "alice/gone", "v2", basic(*ALICE))
        assert info(c, "alice/gone", basic(*ALICE)).json()["description"] == ""
