"""Signing in and out of the web pages with the registry's accounts, in a real browser; and
the session's defences: CSRF, `next=`, sign-out and password changes, the login throttle."""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Callable, Iterator

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Response

from tests.auth.helpers import ADMIN_PASSWORD, AuthRegistry, admin_auth, basic, push_image
from tests.web.conftest import add_accounts, add_user, create_token

PASSWORD = "alice-Pa55word"


@pytest.fixture(scope="module")
def reg(web_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    registry = web_registry()
    add_accounts(registry, {"alice": PASSWORD, "bob": "bob-Pa55word!"})
    return registry


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_sign_in_and_out_in_the_browser(
    reg: AuthRegistry,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    check: Callable[[Page], None],
) -> None:
    page = new_context().new_page()
    visit(page, f"{reg.url}/")
    assert page.get_by_role("link", name="Sign in").is_visible()
    visit(page, f"{reg.url}/sign-in")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "Incorrect username or password" in page.content()
    check(page)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{reg.url}/")
    check(page)
    assert page.get_by_role("navigation").get_by_role("link", name="alice").is_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "dockyard_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{reg.url}/")
    check(page)
    assert page.get_by_role("link", name="Sign in").is_visible()


def test_signing_in_comes_back_to_the_page(
    reg: AuthRegistry,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    check: Callable[[Page], None],
) -> None:
    page = new_context().new_page()
    visit(page, f"{reg.url}/?q=ali")
    page.get_by_role("link", name="Sign in").click()
    page.wait_for_load_state()
    check(page)
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{reg.url}/?q=ali")
    check(page)
    assert page.get_by_role("button", name="Sign out").is_visible()


def test_a_phone_sized_screen_shows_the_sign_in_form(
    reg: AuthRegistry, new_context: Callable[..., BrowserContext], visit: Callable[..., Response]
) -> None:
    page = new_context(viewport={"width": 390, "height": 844}).new_page()
    visit(page, f"{reg.url}/sign-in")
    box = page.get_by_label("Password").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390


def test_dark_theme_follows_the_system(
    reg: AuthRegistry, new_context: Callable[..., BrowserContext], visit: Callable[..., Response]
) -> None:
    light = new_context(color_scheme="light").new_page()
    dark = new_context(color_scheme="dark").new_page()
    visit(light, f"{reg.url}/sign-in")
    visit(dark, f"{reg.url}/sign-in")
    background = "() => getComputedStyle(document.body).backgroundColor"
    assert light.evaluate(background) != dark.evaluate(background)


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "https://evil.example/",
        "https:evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/%2F%2Fevil.example",
        "/%5Cevil.example",
        "%2F%2Fevil.example",
        "/%252F%252Fevil.example",
        "/\t/evil.example",
        "javascript:alert(1)",
        " //evil.example",
    ],
)
def test_next_goes_only_to_a_path_of_this_site(reg: AuthRegistry, target: str) -> None:
    with reg.client() as client:
        form = client.get("/sign-in")
        response = client.post(
            "/sign-in",
            data={
                "csrf": csrf_of(form.text),
                "username": "alice",
                "password": PASSWORD,
                "next": target,
            },
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/"


def test_next_keeps_a_local_path(reg: AuthRegistry) -> None:
    with reg.client() as client:
        form = client.get("/sign-in", params={"next": "/u/alice?x=1"})
        assert 'value="/u/alice?x=1"' in form.text
        response = client.post(
            "/sign-in",
            data={
                "csrf": csrf_of(form.text),
                "username": "alice",
                "password": PASSWORD,
                "next": "/u/alice?x=1",
            },
        )
        assert response.headers["location"] == "/u/alice?x=1"


@contextlib.contextmanager
def signed_in_client(reg: AuthRegistry, user: str, password: str) -> Iterator[httpx.Client]:
    """An HTTP client holding a signed-in session's cookie, as a browser would."""
    with reg.client() as client:
        form = client.get("/sign-in")
        response = client.post(
            "/sign-in",
            data={"csrf": csrf_of(form.text), "username": user, "password": password},
        )
        assert response.status_code == 303, response.text
        yield client


def test_forms_without_this_sessions_csrf_token_are_refused(reg: AuthRegistry) -> None:
    with reg.client() as stranger, reg.client() as client:
        other = csrf_of(stranger.get("/sign-in").text)
        client.get("/sign-in")
        for token in (None, "", "x" * 43, other):
            data = {"username": "alice", "password": PASSWORD}
            if token is not None:
                data["csrf"] = token
            response = client.post("/sign-in", data=data)
            assert response.status_code == 403, token
            assert "dockyard_session" not in response.headers.get("set-cookie", "")
        # A form from another site, even with the right token.
        own = csrf_of(client.get("/sign-in").text)
        response = client.post(
            "/sign-in",
            data={"csrf": own, "username": "alice", "password": PASSWORD},
            headers={"Origin": "http://evil.example"},
        )
        assert response.status_code == 403
        # Sign-out too: the session stays signed in.
        with signed_in_client(reg, "alice", PASSWORD) as alice:
            assert alice.post("/sign-out", data={"csrf": other}).status_code == 403
            assert "Sign out" in alice.get("/").text


def test_a_cookie_replayed_after_sign_out_is_anonymous(reg: AuthRegistry) -> None:
    with signed_in_client(reg, "alice", PASSWORD) as alice:
        cookie = alice.cookies["dockyard_session"]
        home = alice.get("/")
        assert "Sign out" in home.text
        assert alice.post("/sign-out", data={"csrf": csrf_of(home.text)}).status_code == 303
    with reg.client() as replay:
        replay.cookies.set("dockyard_session", cookie)
        page = replay.get("/")
        assert "Sign out" not in page.text and "Sign in" in page.text


def test_a_password_change_ends_every_session(reg: AuthRegistry) -> None:
    add_user(reg, "carol", "carol-Pa55word")
    with signed_in_client(reg, "carol", "carol-Pa55word") as carol:
        assert "Sign out" in carol.get("/").text
        with reg.client() as api:
            changed = api.put(
                "/api/v1/users/carol",
                json={"password": "carol-N3wPassword"},
                headers={"Authorization": admin_auth()},
            )
            assert changed.status_code == 204, changed.text
        page = carol.get("/")
        assert "Sign out" not in page.text


def test_a_forged_or_tampered_cookie_is_anonymous(reg: AuthRegistry) -> None:
    with signed_in_client(reg, "alice", PASSWORD) as alice:
        body, _, mac = alice.cookies["dockyard_session"].partition(".")
    fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    fields[0] = "admin"
    forged = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")
    with reg.client() as client:
        client.cookies.set("dockyard_session", f"{forged}.{mac}")
        assert "Sign out" not in client.get("/").text


def test_access_tokens_do_not_sign_in(reg: AuthRegistry) -> None:
    secret = create_token(reg, "alice", "for-images", "read")
    with reg.client() as client:
        form = client.get("/sign-in")
        response = client.post(
            "/sign-in",
            data={"csrf": csrf_of(form.text), "username": "alice", "password": secret},
        )
        assert response.status_code == 401
        assert "Access tokens are for images" in response.text


def test_failed_sign_ins_are_throttled_like_the_token_endpoint(
    web_registry: Callable[..., AuthRegistry],
) -> None:
    reg = web_registry(env={"DOCKYARD_LOGIN_FAILURE_LIMIT": "3"})
    add_user(reg, "dave", "dave-Pa55word")
    with reg.client() as client:
        token = csrf_of(client.get("/sign-in").text)
        codes = [
            client.post(
                "/sign-in", data={"csrf": token, "username": "dave", "password": "wrong-guess"}
            ).status_code
            for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]
        # Counted with /token's failures: the same account and address are now refused there.
        refused = reg.token_response("repository:dave/app:pull", basic("dave", "dave-Pa55word"))
        assert refused.status_code == 429


def test_without_accounts_there_is_no_sign_in(
    web_registry: Callable[..., AuthRegistry],
) -> None:
    reg = web_registry(args=())
    with reg.client() as client:
        push_image(client, "anyone/app", "v1")  # its Basic header is not even looked at
        home = client.get("/")
        assert home.status_code == 200 and "Sign in" not in home.text
        # Everyone may pull everything there: everything is shown, with no visibility.
        assert 'href="/r/anyone/app"' in home.text and "private" not in home.text
        assert 'href="/r/anyone/app"' in client.get("/u/anyone").text
        for path in ("/sign-in", "/account/tokens", "/admin/users"):
            assert client.get(path).status_code == 404, path


def test_admin_signs_in_too(reg: AuthRegistry) -> None:
    with signed_in_client(reg, "admin", ADMIN_PASSWORD) as admin:
        assert 'href="/admin/users"' in admin.get("/").text
