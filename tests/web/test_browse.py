"""The home page and namespace pages: what each viewer may see (the registry's own policy),
search, last push first; a hidden namespace answers exactly as a missing one."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Response

from tests.auth.helpers import AuthRegistry, admin_auth, basic, push_image
from tests.web.conftest import add_accounts
from tests.web.test_sign_in import signed_in_client

ALICE, BOB = "alice-Pa55word", "bob-Pa55word!"
SECURITY_HEADERS = {
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
}


@pytest.fixture(scope="module")
def reg(web_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    registry = web_registry()
    add_accounts(registry, {"alice": ALICE, "bob": BOB, "carol": "carol-Pa55word"})
    with registry.client() as client:
        push_image(client, "alice/public-app", "v1", basic("alice", ALICE))
        time.sleep(0.05)
        push_image(client, "alice/secret", "v1", basic("alice", ALICE))
        push_image(client, "bob/tool", "v1", basic("bob", BOB))
        push_image(client, "carol/hidden", "v1")
        org = client.post(
            "/api/v1/orgs", json={"name": "acme"}, headers={"Authorization": basic("alice", ALICE)}
        )
        assert org.status_code == 201, org.text
        push_image(client, "acme/api", "v1", basic("alice", ALICE))
        made_public = client.put(
            "/api/v1/repositories/alice/public-app/visibility",
            json={"visibility": "public"},
            headers={"Authorization": admin_auth()},
        )
        assert made_public.status_code == 200, made_public.text
    return registry


def listed(page: Page) -> list[str]:
    return page.locator(".cards .name").all_inner_texts()


def test_anonymous_viewers_see_public_repositories_only(
    reg: AuthRegistry, new_context: Callable[..., BrowserContext], visit: Callable[..., Response]
) -> None:
    page = new_context().new_page()
    visit(page, f"{reg.url}/")
    assert listed(page) == ["alice/public-app"]
    assert page.locator(".card .badge").all_inner_texts() == ["public"]
    visit(page, f"{reg.url}/u/alice")
    assert listed(page) == ["alice/public-app"]
    assert page.locator("main .meta").first.inner_text() == "User"
    visit(page, f"{reg.url}/u/bob", status=404)
    visit(page, f"{reg.url}/u/acme", status=404)
    assert "bob" not in page.locator("main").inner_text()


def test_a_signed_in_viewer_sees_their_own_last_push_first(
    reg: AuthRegistry,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    check: Callable[[Page], None],
    sign_in: Callable[..., None],
) -> None:
    page = new_context().new_page()
    sign_in(page, reg.url, "alice", ALICE)
    check(page)
    assert listed(page) == ["acme/api", "alice/secret", "alice/public-app"]
    badges = page.locator(".card .badge").all_inner_texts()
    assert badges == ["private", "private", "public"]
    assert page.get_by_role("link", name="alice", exact=True).first.is_visible()
    visit(page, f"{reg.url}/?q=SECRET")
    assert listed(page) == ["alice/secret"]
    page.get_by_label("Search repositories").fill("public")
    page.get_by_role("button", name="Search").click()
    page.wait_for_load_state()
    check(page)
    assert listed(page) == ["alice/public-app"]
    visit(page, f"{reg.url}/u/bob", status=404)
    visit(page, f"{reg.url}/u/acme")
    assert listed(page) == ["acme/api"]
    assert page.locator("main .meta").first.inner_text() == "Organisation"


def test_the_keyboard_reaches_the_content_first(
    reg: AuthRegistry, new_context: Callable[..., BrowserContext], visit: Callable[..., Response]
) -> None:
    page = new_context().new_page()
    visit(page, f"{reg.url}/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.url.endswith("#main")
    # Past the navigation, to the first namespace, then the first repository.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "alice"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "alice/public-app"


def test_a_push_appears_at_once(
    reg: AuthRegistry,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    sign_in: Callable[..., None],
) -> None:
    page = new_context().new_page()
    sign_in(page, reg.url, "bob", BOB)
    assert listed(page) == ["bob/tool", "alice/public-app"]
    with reg.client() as client:
        push_image(client, "bob/fresh", "v1", basic("bob", BOB))
    visit(page, f"{reg.url}/")
    assert listed(page)[0] == "bob/fresh"


def test_administrators_see_everything(
    reg: AuthRegistry,
    new_context: Callable[..., BrowserContext],
    sign_in: Callable[..., None],
) -> None:
    from tests.auth.helpers import ADMIN_PASSWORD

    page = new_context().new_page()
    sign_in(page, reg.url, "admin", ADMIN_PASSWORD)
    assert {"alice/secret", "bob/tool", "carol/hidden"} <= set(listed(page))


@pytest.mark.parametrize("who", ["anonymous", "bob"])
def test_a_hidden_namespace_answers_exactly_as_a_missing_one(reg: AuthRegistry, who: str) -> None:
    def fetch(client: httpx.Client) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        client.get("/")  # the session cookie, kept for both requests
        hidden = client.get("/u/carol")
        missing = client.get("/u/nobody-here")
        return (hidden.status_code, hidden.content), (missing.status_code, missing.content)

    if who == "anonymous":
        with reg.client() as client:
            hidden, missing = fetch(client)
    else:
        with signed_in_client(reg, "bob", BOB) as client:
            hidden, missing = fetch(client)
    assert hidden[0] == 404
    assert hidden == missing


def test_search_text_is_escaped(reg: AuthRegistry) -> None:
    with reg.client() as client:
        page = client.get("/", params={"q": '<script>alert(1)</script>"'})
        assert page.status_code == 200
        assert "<script>alert(1)" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;" in page.text


def test_every_answer_carries_the_security_headers(reg: AuthRegistry) -> None:
    with reg.client() as client:
        for path, status in [
            ("/", 200),
            ("/u/alice", 200),
            ("/u/nobody-here", 404),
            ("/u/NOT_A_NAME", 404),
            ("/sign-in", 200),
            ("/static/dockyard.css", 200),
            ("/static/missing.css", 404),
        ]:
            response = client.get(path)
            assert response.status_code == status, path
            assert set(response.headers) >= SECURITY_HEADERS, path
            assert response.headers["x-content-type-options"] == "nosniff"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert "unsafe-inline" not in response.headers["content-security-policy"]
        assert client.get("/static/dockyard.css").headers["content-type"].startswith("text/css")


def test_no_ui_leaves_the_registry_api_alone(web_registry: Callable[..., AuthRegistry]) -> None:
    reg = web_registry(args=("--auth", "--no-ui"))
    with reg.client() as client:
        home = client.get("/")
        assert home.status_code == 404
        assert home.json()["errors"][0]["code"] == "UNSUPPORTED"
        assert client.get("/sign-in").status_code == 404
        assert client.get("/v2/").status_code == 401
        assert client.get("/api/v1/me", headers={"Authorization": admin_auth()}).json()["admin"]
