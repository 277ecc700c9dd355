"""Administrators' pages: users (add, disable and enable, set a password) and storage per
namespace; and that nobody else reaches them, nor changes anything through them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, Response

from tests.auth.helpers import ADMIN_PASSWORD, AuthRegistry, basic, push_image, settle_access
from tests.web.conftest import add_user, create_token
from tests.web.test_sign_in import csrf_of, signed_in_client

BOB = "bob-Pa55word!"


@pytest.fixture(scope="module")
def reg(web_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    registry = web_registry()
    add_user(registry, "bob", BOB)
    with registry.client() as client:
        push_image(client, "bob/tool", "v1", basic("bob", BOB))
    return registry


def v2_status(reg: AuthRegistry, user: str, password: str) -> int:
    with reg.client() as client:
        return client.get("/v2/", headers={"Authorization": basic(user, password)}).status_code


def test_add_disable_and_enable_a_user_in_the_page(
    reg: AuthRegistry,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    check: Callable[[Page], None],
    sign_in: Callable[..., None],
) -> None:
    page = new_context().new_page()
    sign_in(page, reg.url, "admin", ADMIN_PASSWORD)
    visit(page, f"{reg.url}/admin/users")
    page.get_by_label("Name", exact=True).fill("grace")
    page.get_by_label("Password", exact=True).fill("grace-Pa55word")
    page.get_by_role("button", name="Add user").click()
    page.wait_for_url(f"{reg.url}/admin/users?done=added&user=grace")
    check(page)
    assert "Added grace." in page.locator("main").inner_text()
    assert v2_status(reg, "grace", "grace-Pa55word") == 200
    token = create_token(reg, "grace", "ci", "read")
    assert v2_status(reg, "grace", token) == 200

    with signed_in_client(reg, "grace", "grace-Pa55word") as grace:
        assert "Sign out" in grace.get("/").text
        # Disabling asks first, saying what it means.
        page.get_by_role("link", name="Disable grace").click()
        page.wait_for_url(f"{reg.url}/admin/users/disable?name=grace")
        check(page)
        assert "will not be able to sign in" in page.locator("main").inner_text()
        page.get_by_role("link", name="Cancel").click()
        page.wait_for_url(f"{reg.url}/admin/users")
        assert v2_status(reg, "grace", "grace-Pa55word") == 200
        page.get_by_role("link", name="Disable grace").click()
        page.get_by_role("button", name="Disable grace").click()
        page.wait_for_url(f"{reg.url}/admin/users?done=disabled&user=grace")
        check(page)
        settle_access()
        # Her session, password and token are refused on every worker.
        assert "Sign out" not in grace.get("/").text
        assert v2_status(reg, "grace", "grace-Pa55word") == 401
        assert v2_status(reg, "grace", token) == 401
        row = page.get_by_role("row").filter(has_text="grace")
        assert "disabled" in row.inner_text()

        page.get_by_role("link", name="Enable grace").click()
        page.wait_for_url(f"{reg.url}/admin/users/enable?name=grace")
        check(page)
        page.get_by_role("button", name="Enable grace").click()
        page.wait_for_url(f"{reg.url}/admin/users?done=enabled&user=grace")
        check(page)
        assert "Enabled grace." in page.locator("main").inner_text()
        settle_access()
        # Everything as it was: the same session, password and token.
        assert "Sign out" in grace.get("/").text
    assert v2_status(reg, "grace", "grace-Pa55word") == 200
    assert v2_status(reg, "grace", token) == 200
    assert "active" in page.get_by_role("row").filter(has_text="grace").inner_text()

    page.get_by_label("New password for grace").fill("grace-N3wPassword")
    page.get_by_role("button", name="Set password of grace").click()
    page.wait_for_url(f"{reg.url}/admin/users?done=password&user=grace")
    check(page)
    assert v2_status(reg, "grace", "grace-N3wPassword") == 200


def test_storage_per_namespace(
    reg: AuthRegistry,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    sign_in: Callable[..., None],
) -> None:
    page = new_context().new_page()
    sign_in(page, reg.url, "admin", ADMIN_PASSWORD)
    visit(page, f"{reg.url}/admin/usage")
    row = page.get_by_role("row").filter(has_text="bob")
    cells = row.get_by_role("cell").all_inner_texts()
    assert cells[0] == "bob" and cells[1] == "1"
    assert "B" in cells[3]


def test_only_administrators_reach_the_admin_pages(reg: AuthRegistry) -> None:
    with reg.client() as anonymous:
        assert anonymous.get("/admin/users").status_code == 303
        assert anonymous.get("/admin/usage").status_code == 303
    with signed_in_client(reg, "bob", BOB) as bob:
        token = csrf_of(bob.get("/").text)
        assert bob.get("/admin/users").status_code == 403
        assert bob.get("/admin/usage").status_code == 403
        assert bob.get("/admin/users/disable?name=admin").status_code == 403
        posts = [
            ("/admin/users", {"name": "mallory", "password": "mallory-Pa55word"}),
            ("/admin/users/disable", {"name": "admin"}),
            ("/admin/users/enable", {"name": "bob"}),
            ("/admin/users/password", {"name": "admin", "password": "taken-over-1"}),
        ]
        for path, data in posts:
            assert bob.post(path, data={"csrf": token, **data}).status_code == 403, path
    assert v2_status(reg, "admin", ADMIN_PASSWORD) == 200
    assert v2_status(reg, "mallory", "mallory-Pa55word") == 401


def test_admin_forms_need_the_sessions_token(reg: AuthRegistry) -> None:
    add_user(reg, "heidi", "heidi-Pa55word")
    with signed_in_client(reg, "admin", ADMIN_PASSWORD) as admin, reg.client() as other:
        foreign = csrf_of(other.get("/sign-in").text)
        for token in (None, "", foreign):
            data = {"name": "heidi"}
            if token is not None:
                data["csrf"] = token
            assert admin.post("/admin/users/disable", data=data).status_code == 403
            data = {"name": "heidi", "password": "heidi-Ch4nged!"}
            if token is not None:
                data["csrf"] = token
            assert admin.post("/admin/users/password", data=data).status_code == 403
    assert v2_status(reg, "heidi", "heidi-Pa55word") == 200


def test_admin_forms_refuse_bad_input(reg: AuthRegistry) -> None:
    with signed_in_client(reg, "admin", ADMIN_PASSWORD) as admin:
        token = csrf_of(admin.get("/admin/users").text)
        cases = [
            ("/admin/users", {"name": "Not A Name", "password": "long-enough-1"}, 400),
            ("/admin/users", {"name": "ivan", "password": "short"}, 400),
            ("/admin/users", {"name": "ivan", "password": ""}, 400),
            ("/admin/users", {"name": "bob", "password": "long-enough-1"}, 409),
            ("/admin/users/disable", {"name": "nobody-here"}, 404),
            ("/admin/users/disable", {"name": "admin"}, 400),
            ("/admin/users/enable", {"name": "nobody-here"}, 404),
            ("/admin/users/enable", {"name": "../admin"}, 404),
            ("/admin/users/password", {"name": "nobody-here", "password": "long-enough-1"}, 404),
            ("/admin/users/password", {"name": "bob", "password": "short"}, 400),
        ]
        for path, data, status in cases:
            response = admin.post(path, data={"csrf": token, **data})
            assert response.status_code == status, (path, data, response.text[-300:])
        # A link someone else wrote cannot put words in the page.
        page = admin.get("/admin/users", params={"done": "Your account is locked", "user": "bob"})
        assert "locked" not in page.text
    assert v2_status(reg, "bob", BOB) == 200
    assert v2_status(reg, "admin", ADMIN_PASSWORD) == 200
