"""Disabling an account for real, against a running server: while disabled, the account's
password (Basic, `/token`, the sign-in page), access tokens, bearer and refresh tokens from
before and its session cookie are all refused, while its public repository stays pullable by
anyone; enabling restores every one of them as it was. Only an administrator disables, with
the password, never their own account, never the last enabled administrator."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.auth.helpers import (
    SERVICE,
    AuthRegistry,
    admin_auth,
    basic,
    get_manifest,
    push_image,
    settle_access,
)

CAROL = "carol-Pa55word"
DAVE = "dave-Pa55word"


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    registry = start_auth_registry()
    registry.add_user("carol", CAROL)
    registry.add_user("dave", DAVE)
    with registry.client() as http:
        push_image(http, "carol/public", "v1", basic("carol", CAROL))
        push_image(http, "carol/private", "v1", basic("carol", CAROL))
        response = http.put(
            "/api/v1/repositories/carol/public/visibility",
            json={"visibility": "public"},
            headers={"Authorization": basic("carol", CAROL)},
        )
        assert response.status_code == 200, response.text
    return registry


def set_disabled(reg: AuthRegistry, user: str, value: object, auth: str) -> httpx.Response:
    with reg.client() as http:
        answer = http.put(
            f"/api/v1/users/{user}/disabled",
            json={"disabled": value},
            headers={"Authorization": auth},
        )
    settle_access()
    return answer


def v2(reg: AuthRegistry, auth: str) -> int:
    with reg.client() as http:
        return http.get("/v2/", headers={"Authorization": auth}).status_code


def pull_status(reg: AuthRegistry, repo: str, auth: str | None) -> int:
    with reg.client() as http:
        return get_manifest(http, repo, "v1", auth).status_code


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


@contextmanager
def session(reg: AuthRegistry, user: str, password: str) -> Iterator[httpx.Client]:
    """A client holding a signed-in session's cookie, as a browser would."""
    with reg.client() as client:
        form = client.get("/sign-in")
        response = client.post(
            "/sign-in",
            data={"csrf": csrf_of(form.text), "username": user, "password": password},
        )
        assert response.status_code == 303, response.text
        yield client


def signed_in(client: httpx.Client) -> bool:
    return "Sign out" in client.get("/").text


def refresh(reg: AuthRegistry, refresh_token: str) -> int:
    return httpx.post(
        reg.realm,
        data={
            "service": SERVICE,
            "client_id": "tests",
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "scope": "repository:carol/private:pull",
        },
        timeout=30,
    ).status_code


def test_a_disabled_account_signs_in_nowhere_and_enabling_restores_everything(
    reg: AuthRegistry,
) -> None:
    carol = basic("carol", CAROL)
    access_token = reg.create_token("carol", "ci", "read")
    bearer = reg.bearer("repository:carol/private:pull", carol)
    offline = httpx.post(
        reg.realm,
        data={
            "service": SERVICE,
            "client_id": "tests",
            "grant_type": "password",
            "username": "carol",
            "password": CAROL,
            "access_type": "offline",
            "scope": "repository:carol/private:pull",
        },
        timeout=30,
    )
    assert offline.status_code == 200, offline.text
    refresh_token = offline.json()["refresh_token"]

    with session(reg, "carol", CAROL) as browser:
        assert signed_in(browser)
        before = {
            "basic": v2(reg, carol),
            "access token": v2(reg, basic("carol", access_token)),
            "bearer": pull_status(reg, "carol/private", bearer),
            "refresh": refresh(reg, refresh_token),
        }
        assert set(before.values()) == {200}, before

        answer = set_disabled(reg, "carol", True, admin_auth())
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"name": "carol", "disabled": True}

        # Everything of hers is refused, the session cookie she holds included.
        assert not signed_in(browser)
        assert v2(reg, carol) == 401
        assert v2(reg, basic("carol", access_token)) == 401
        assert pull_status(reg, "carol/private", bearer) in (401, 403)
        assert refresh(reg, refresh_token) == 401
        assert reg.token_response("repository:carol/private:pull", carol).status_code == 401
        with reg.client() as fresh:
            form = fresh.get("/sign-in")
            failed = fresh.post(
                "/sign-in",
                data={"csrf": csrf_of(form.text), "username": "carol", "password": CAROL},
            )
            assert failed.status_code == 401
            assert not signed_in(fresh)
        # Her public repository stays pullable by anyone, her private one by the admin.
        assert pull_status(reg, "carol/public", None) == 200
        assert pull_status(reg, "carol/private", None) == 401
        assert pull_status(reg, "carol/private", admin_auth()) == 200
        with reg.client() as http:
            users = http.get("/api/v1/users", headers={"Authorization": admin_auth()}).json()
        assert {"name": "carol", "admin": False, "disabled": True} in users["users"]

        answer = set_disabled(reg, "carol", False, admin_auth())
        assert answer.status_code == 200 and answer.json()["disabled"] is False

        # As it was: the same session, tokens and password work again.
        assert signed_in(browser)
        after = {
            "basic": v2(reg, carol),
            "access token": v2(reg, basic("carol", access_token)),
            "bearer": pull_status(reg, "carol/private", bearer),
            "refresh": refresh(reg, refresh_token),
        }
        assert after == before, after


def test_only_an_administrator_with_the_password_disables(reg: AuthRegistry) -> None:
    dave = basic("dave", DAVE)
    assert set_disabled(reg, "carol", True, dave).status_code == 403
    assert set_disabled(reg, "dave", True, dave).status_code == 403  # not even himself
    token = reg.create_token("admin", "automation", "delete")
    assert set_disabled(reg, "carol", True, basic("admin", token)).status_code == 403
    with reg.client() as http:
        response = http.put(
            "/api/v1/users/carol/disabled", json={"disabled": True}
        )  # no credentials at all
        assert response.status_code == 401
    assert v2(reg, basic("carol", CAROL)) == 200


def test_malformed_requests_and_unknown_users_are_refused(reg: AuthRegistry) -> None:
    admin = admin_auth()
    for value in ("yes", 1, None, [True]):
        assert set_disabled(reg, "carol", value, admin).status_code == 400, value
    assert set_disabled(reg, "nobody-here", True, admin).status_code == 404
    assert set_disabled(reg, "nobody-here", False, admin).status_code == 404
    with reg.client() as http:
        response = http.put(
            "/api/v1/users/carol/disabled",
            content=b'{"disabled": true}',
            headers={"Authorization": admin, "Content-Type": "text/plain"},
        )
        assert response.status_code == 415
        huge = http.put(
            "/api/v1/users/carol/disabled",
            content=b'{"disabled": true, "pad": "' + b"x" * 100_000 + b'"}',
            headers={"Authorization": admin, "Content-Type": "application/json"},
        )
        assert huge.status_code == 413
    assert v2(reg, basic("carol", CAROL)) == 200


def test_the_last_enabled_administrator_is_never_disabled(reg: AuthRegistry) -> None:
    # Over HTTP an administrator cannot disable their own account at all.
    answer = set_disabled(reg, "admin", True, admin_auth())
    assert answer.status_code == 400, answer.text
    # The command line works on the folder, with nobody signed in: it refuses the last one.
    refused = reg.admin("user", "disable", "admin", ok=False)
    assert refused.exit_code != 0
    assert "last enabled administrator" in refused.output
    assert v2(reg, admin_auth()) == 200

    # With a second administrator, the first may be disabled (by the command), not both.
    reg.add_user("erin", "erin-Pa55word", "--admin")
    reg.admin("user", "disable", "admin")
    settle_access()
    assert v2(reg, admin_auth()) == 401
    assert "admin  (admin, disabled)" in reg.admin("user", "list").output
    erin = basic("erin", "erin-Pa55word")
    assert set_disabled(reg, "erin", True, erin).status_code == 400
    assert reg.admin("user", "disable", "erin", ok=False).exit_code != 0
    assert set_disabled(reg, "admin", False, erin).status_code == 200
    assert v2(reg, admin_auth()) == 200
    reg.admin("user", "enable", "admin")  # already enabled: said so, changed nothing
    assert reg.admin("user", "enable", "nobody-here", ok=False).exit_code != 0
