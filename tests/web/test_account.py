"""The account pages: personal access tokens (create in the page, log in with skopeo, revoke,
refused) and changing the password; and their defences: CSRF, other accounts' tokens, ended
sessions."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Response

from tests.auth.helpers import AuthRegistry, basic, push_image
from tests.support.peers import ContainersEnv, containers_env, require
from tests.web.conftest import add_accounts, add_user, create_token
from tests.web.test_sign_in import csrf_of, signed_in_client

ALICE, BOB = "alice-Pa55word", "bob-Pa55word!"
TLS = "--tls-verify=false"


@pytest.fixture(scope="module")
def reg(web_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    registry = web_registry()
    add_accounts(registry, {"alice": ALICE, "bob": BOB})
    with registry.client() as client:
        push_image(client, "alice/app", "v1", basic("alice", ALICE))
    return registry


@pytest.fixture
def ce(tmp_path: Path) -> Iterator[ContainersEnv]:
    require("skopeo")
    with containers_env(tmp_path / "containers") as env:
        yield env


def token_ids(reg: AuthRegistry, user: str, password: str) -> dict[str, bool]:
    """name -> revoked, as the account API lists them."""
    with reg.client() as client:
        listed = client.get("/api/v1/tokens", headers={"Authorization": basic(user, password)})
        assert listed.status_code == 200, listed.text
        return {t["name"]: t["revoked"] for t in listed.json()["tokens"]}


def test_create_a_token_in_the_page_log_in_with_it_then_revoke_it(
    reg: AuthRegistry,
    ce: ContainersEnv,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    check: Callable[[Page], None],
    sign_in: Callable[..., None],
) -> None:
    page = new_context().new_page()
    sign_in(page, reg.url, "alice", ALICE)
    assert page.locator(".cards .name").all_inner_texts() == ["alice/app"]
    visit(page, f"{reg.url}/account/tokens")
    page.get_by_label("Name").fill("laptop")
    page.get_by_label("Scope").select_option("write")
    page.get_by_role("button", name="Create token").click()
    page.wait_for_load_state()
    check(page)
    secret = page.get_by_label("Access token").input_value()
    assert secret.startswith("dyt_")
    commands = page.locator("pre").first.inner_text()
    assert f"docker login {reg.host} -u alice" in commands
    assert f"dockyard login {reg.host} -u alice" in commands
    # Shown once: the list never shows it again.
    visit(page, f"{reg.url}/account/tokens")
    assert secret not in page.content()
    assert page.get_by_role("cell", name="laptop", exact=True).is_visible()

    login = ce.skopeo("login", TLS, "-u", "alice", "--password-stdin", reg.host, input=secret)
    assert "Login Succeeded" in login.stdout
    ce.skopeo("logout", "--all")

    page.get_by_role("button", name="Revoke laptop").click()
    page.wait_for_url(f"{reg.url}/account/tokens")
    check(page)
    assert "revoked" in page.locator("tbody").inner_text()
    refused = ce.skopeo(
        "login", TLS, "-u", "alice", "--password-stdin", reg.host, input=secret, check=False
    )
    assert refused.returncode != 0
    assert token_ids(reg, "alice", ALICE)["laptop"] is True


def test_signing_in_is_asked_first(reg: AuthRegistry) -> None:
    with reg.client() as client:
        for path in ("/account/tokens", "/account/password"):
            response = client.get(path)
            assert response.status_code == 303
            assert response.headers["location"] == "/sign-in?next=" + path
        token = csrf_of(client.get("/sign-in").text)
        created = client.post("/account/tokens", data={"csrf": token, "name": "x"})
        assert created.status_code == 403


def test_another_accounts_token_cannot_be_revoked(reg: AuthRegistry) -> None:
    create_token(reg, "alice", "alices", "read")
    alices = next(
        t["id"]
        for t in httpx.get(
            f"{reg.url}/api/v1/tokens", headers={"Authorization": basic("alice", ALICE)}
        ).json()["tokens"]
        if t["name"] == "alices"
    )
    with signed_in_client(reg, "bob", BOB) as bob:
        token = csrf_of(bob.get("/account/tokens").text)
        for value in (alices, "alices", "", "x" * 5000):
            response = bob.post("/account/tokens/revoke", data={"csrf": token, "token": value})
            assert response.status_code == 404, value
    assert token_ids(reg, "alice", ALICE)["alices"] is False


def test_forms_without_the_sessions_token_change_nothing(reg: AuthRegistry) -> None:
    with signed_in_client(reg, "bob", BOB) as bob, reg.client() as stranger:
        other = csrf_of(stranger.get("/sign-in").text)
        with signed_in_client(reg, "alice", ALICE) as alice:
            alices_session_token = csrf_of(alice.get("/account/tokens").text)
        for token in (None, "", "forged", other, alices_session_token):
            data = {"name": f"csrf-{token}", "scope": "delete"}
            if token is not None:
                data["csrf"] = token
            assert bob.post("/account/tokens", data=data).status_code == 403
            data = {"current_password": BOB, "new_password": "x" * 12, "confirm_password": "x" * 12}
            if token is not None:
                data["csrf"] = token
            assert bob.post("/account/password", data=data).status_code == 403
        assert not any(name.startswith("csrf-") for name in token_ids(reg, "bob", BOB))
        # The password did not change.
        assert token_ids(reg, "bob", BOB) is not None


def test_bad_token_forms_are_told_and_change_nothing(reg: AuthRegistry) -> None:
    with signed_in_client(reg, "bob", BOB) as bob:
        token = csrf_of(bob.get("/account/tokens").text)
        cases = [
            ({"name": "", "scope": "read"}, 400),
            ({"name": "n" * 101, "scope": "read"}, 400),
            ({"name": "ok", "scope": "admin"}, 400),
            ({"name": "ok", "scope": "read", "expires_in_days": "-1"}, 400),
            ({"name": "ok", "scope": "read", "expires_in_days": "99999999999"}, 400),
            ({"name": "ok", "scope": "read", "expires_in_days": "٣"}, 400),
        ]
        for data, status in cases:
            response = bob.post("/account/tokens", data={"csrf": token, **data})
            assert response.status_code == status, data
        assert "ok" not in token_ids(reg, "bob", BOB)
        first = bob.post("/account/tokens", data={"csrf": token, "name": "twice"})
        assert first.status_code == 201
        again = bob.post("/account/tokens", data={"csrf": token, "name": "twice"})
        assert again.status_code == 409
        big = bob.post("/account/tokens", data={"csrf": token, "name": "x" * 70_000})
        assert big.status_code == 413


def test_change_the_password_in_the_page(
    web_registry: Callable[..., AuthRegistry],
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    check: Callable[[Page], None],
    sign_in: Callable[..., None],
) -> None:
    reg = web_registry()
    add_user(reg, "erin", "erin-Pa55word")
    page = new_context().new_page()
    sign_in(page, reg.url, "erin", "erin-Pa55word")
    with signed_in_client(reg, "erin", "erin-Pa55word") as elsewhere:
        assert "Sign out" in elsewhere.get("/").text
        visit(page, f"{reg.url}/account/password")

        def submit(current: str, new: str, confirm: str) -> str:
            page.get_by_label("Current password").fill(current)
            page.get_by_label("New password", exact=True).fill(new)
            page.get_by_label("New password, again").fill(confirm)
            page.get_by_role("button", name="Change password").click()
            page.wait_for_load_state()
            check(page)
            return page.locator("main").inner_text()

        assert "differ" in submit("erin-Pa55word", "erin-N3wPassword", "something-else")
        assert "not the account's" in submit(
            "wrong-password", "erin-N3wPassword", "erin-N3wPassword"
        )
        assert "too short" in submit("erin-Pa55word", "short", "short")
        assert "Password changed" in submit("erin-Pa55word", "erin-N3wPassword", "erin-N3wPassword")
        # This browser is still signed in; the other session is over, and cannot post.
        assert page.get_by_role("button", name="Sign out").is_visible()
        assert "Sign out" not in elsewhere.get("/").text
    with reg.client() as client:
        assert (
            client.get(
                "/v2/", headers={"Authorization": basic("erin", "erin-Pa55word")}
            ).status_code
            == 401
        )
        assert (
            client.get(
                "/v2/", headers={"Authorization": basic("erin", "erin-N3wPassword")}
            ).status_code
            == 200
        )


def test_an_ended_sessions_forms_are_refused(reg: AuthRegistry) -> None:
    add_user(reg, "frank", "frank-Pa55word")
    with signed_in_client(reg, "frank", "frank-Pa55word") as frank:
        token = csrf_of(frank.get("/account/tokens").text)
        cookie = frank.cookies["dockyard_session"]
        assert frank.post("/sign-out", data={"csrf": token}).status_code == 303
    with reg.client() as replay:
        replay.cookies.set("dockyard_session", cookie)
        response = replay.post("/account/tokens", data={"csrf": token, "name": "after"})
        assert response.status_code == 403
    assert "after" not in token_ids(reg, "frank", "frank-Pa55word")


def test_token_page_shows_only_the_viewers_tokens(reg: AuthRegistry) -> None:
    create_token(reg, "alice", "alice-only", "read")
    with signed_in_client(reg, "bob", BOB) as bob:
        page = bob.get("/account/tokens").text
        assert "alice-only" not in page
        assert re.search(r"dyt_[0-9a-f]{16}_", page) is None


def test_credentials_in_headers_are_no_session(reg: AuthRegistry) -> None:
    """The pages know their own session only: Basic credentials or an access token in an
    Authorization header (what scripts hold) neither open nor change an account page."""
    token = create_token(reg, "alice", "scripted", "delete")
    with reg.client() as client:
        for auth in (basic("alice", ALICE), basic("alice", token)):
            page = client.get("/account/tokens", headers={"Authorization": auth})
            assert page.status_code == 303
            csrf = csrf_of(client.get("/sign-in").text)
            posted = client.post(
                "/account/tokens",
                data={"csrf": csrf, "name": "via-header"},
                headers={"Authorization": auth},
            )
            assert posted.status_code == 403
    assert "via-header" not in token_ids(reg, "alice", ALICE)


def test_malformed_forms_are_refused(reg: AuthRegistry) -> None:
    with signed_in_client(reg, "bob", BOB) as bob:
        csrf = csrf_of(bob.get("/account/tokens").text)
        as_json = bob.post("/account/tokens", json={"csrf": csrf, "name": "json"})
        assert as_json.status_code == 415
        garbage = bob.post(
            "/account/tokens",
            content=b"csrf=" + csrf.encode() + b"&name=%FF%FE%00&&&==",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert garbage.status_code == 400  # a NUL is no printable name
        doubled = bob.post(
            "/account/tokens",
            content=f"csrf=forged&csrf={csrf}&name=doubled".encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert doubled.status_code == 403  # the first of each field counts
    assert not {"json", "doubled"} & set(token_ids(reg, "bob", BOB))
