"""An organisation's members and a namespace's default visibility in the pages: its owners add
members, change roles and remove members (after a confirmation) and switch what new
repositories become; its other members see the list and nothing to change; everyone else
sees nothing. Every refusal (no or another session's CSRF token, another site's form, a
non-owner's form, another organisation, the last owner, a user who does not exist, malformed
or oversized fields) is a clear page, and the account API shows that nothing changed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Response

from tests.auth.helpers import AuthRegistry, admin_auth, basic, push_image
from tests.web.conftest import add_accounts
from tests.web.test_sign_in import csrf_of, signed_in_client

PASSWORDS = {
    "olga": "olga-Pa55word",  # owner of fleet
    "mark": "mark-Pa55word",  # maintainer of fleet
    "rita": "rita-Pa55word",  # reader of fleet
    "nick": "nick-Pa55word",  # owner of rival, nothing in fleet
    "pat": "pat-Pa55word!",  # nobody's member, until the pages add her
}
FLEET = [
    {"user": "mark", "role": "maintainer"},
    {"user": "olga", "role": "owner"},
    {"user": "rita", "role": "reader"},
]
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def reg(web_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    registry = web_registry()
    add_accounts(
        registry,
        PASSWORDS,
        ("org", "create", "fleet", "--owner", "olga"),
        ("org", "add-member", "fleet", "mark", "--role", "maintainer"),
        ("org", "add-member", "fleet", "rita", "--role", "reader"),
        ("org", "create", "rival", "--owner", "nick"),
    )
    with registry.client() as client:
        push_image(client, "fleet/app", "v1", basic("olga", PASSWORDS["olga"]))
        push_image(client, "fleet/site", "v1", basic("olga", PASSWORDS["olga"]))
        push_image(client, "rival/app", "v1", basic("nick", PASSWORDS["nick"]))
        public = client.put(
            "/api/v1/repositories/fleet/site/visibility",
            json={"visibility": "public"},
            headers=auth("olga"),
        )
        assert public.status_code == 200, public.text
    return registry


def auth(user: str) -> dict[str, str]:
    return {"Authorization": basic(user, PASSWORDS[user])}


def members_of(reg: AuthRegistry, org: str) -> list[dict[str, str]]:
    with reg.client() as client:
        response = client.get(
            f"/api/v1/orgs/{org}/members", headers={"Authorization": admin_auth()}
        )
        assert response.status_code == 200, response.text
        members: list[dict[str, str]] = response.json()["members"]
        return members


def visibility_of(reg: AuthRegistry, repository: str) -> str:
    with reg.client() as client:
        response = client.get(
            f"/api/v1/repositories/{repository}", headers={"Authorization": admin_auth()}
        )
        assert response.status_code == 200, response.text
        visibility: str = response.json()["visibility"]
        return visibility


@contextmanager
def session_of(reg: AuthRegistry, user: str) -> Iterator[tuple[httpx.Client, str]]:
    """A signed-in session and its CSRF token."""
    with signed_in_client(reg, user, PASSWORDS[user]) as client:
        yield client, csrf_of(client.get("/").text)


def test_an_owner_manages_members_in_the_browser(
    reg: AuthRegistry,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    check: Callable[[Page], None],
    sign_in: Callable[..., None],
) -> None:
    page = new_context().new_page()
    sign_in(page, reg.url, "olga", PASSWORDS["olga"])
    visit(page, f"{reg.url}/u/fleet")
    page.get_by_role("link", name="Members").click()
    page.wait_for_url(f"{reg.url}/u/fleet/-/members")
    check(page)
    # The only owner has no controls that the service would refuse anyway.
    assert "(the only owner)" in page.locator("main").inner_text()
    assert page.get_by_role("link", name="Remove olga").count() == 0
    assert page.get_by_label("Role of olga", exact=True).count() == 0

    page.get_by_label("User name").fill("pat")
    page.get_by_label("Role", exact=True).select_option("reader")
    page.get_by_role("button", name="Add member").click()
    page.wait_for_url(f"{reg.url}/u/fleet/-/members?done=added&user=pat")
    check(page)
    assert "pat is now a member." in page.locator("main").inner_text()
    assert {"user": "pat", "role": "reader"} in members_of(reg, "fleet")

    page.get_by_label("Role of pat", exact=True).select_option("owner")
    page.get_by_role("button", name="Change role of pat").click()
    page.wait_for_url(f"{reg.url}/u/fleet/-/members?done=role&user=pat")
    check(page)
    assert {"user": "pat", "role": "owner"} in members_of(reg, "fleet")
    # Two owners now: olga may step down, and pat could remove her.
    assert page.get_by_label("Role of olga", exact=True).count() == 1

    page.get_by_role("link", name="Remove pat").click()
    page.wait_for_url(f"{reg.url}/u/fleet/-/members/remove?user=pat")
    check(page)
    text = page.locator("main").inner_text()
    assert "Remove pat from fleet?" in text and "nor manage its members" in text
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(f"{reg.url}/u/fleet/-/members")
    assert {"user": "pat", "role": "owner"} in members_of(reg, "fleet")
    page.get_by_role("link", name="Remove pat").click()
    page.get_by_role("button", name="Remove pat").click()
    page.wait_for_url(f"{reg.url}/u/fleet/-/members?done=removed&user=pat")
    check(page)
    assert "pat is no longer a member." in page.locator("main").inner_text()
    assert members_of(reg, "fleet") == FLEET
    with reg.client() as client:
        assert client.get("/v2/fleet/app/tags/list", headers=auth("pat")).status_code == 401

    # The same page, dark and phone-sized.
    for options in ({"color_scheme": "dark"}, {"viewport": PHONE}):
        other = new_context(**options).new_page()
        sign_in(other, reg.url, "olga", PASSWORDS["olga"])
        visit(other, f"{reg.url}/u/fleet/-/members")
        visit(other, f"{reg.url}/u/fleet/-/members/remove?user=rita")
        visit(other, f"{reg.url}/u/fleet/-/default-visibility?to=public")


def test_an_owner_sets_what_new_repositories_become(
    reg: AuthRegistry,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    check: Callable[[Page], None],
    sign_in: Callable[..., None],
) -> None:
    page = new_context(color_scheme="dark").new_page()
    sign_in(page, reg.url, "olga", PASSWORDS["olga"])
    visit(page, f"{reg.url}/u/fleet")
    settings = page.get_by_role("region", name="Settings")
    assert "are private" in settings.inner_text()
    settings.get_by_role("link", name="Make new repositories public").click()
    page.wait_for_url(f"{reg.url}/u/fleet/-/default-visibility?to=public")
    check(page)
    text = page.locator("main").inner_text()
    assert "from now on becomes public: anyone can pull it" in text
    assert "already in fleet keep the visibility they have now" in text
    page.get_by_role("button", name="Make new repositories public").click()
    page.wait_for_url(f"{reg.url}/u/fleet")
    check(page)
    assert "are public" in page.get_by_role("region", name="Settings").inner_text()

    with reg.client() as client:
        push_image(client, "fleet/fresh", "v1", basic("olga", PASSWORDS["olga"]))
        assert client.get("/v2/fleet/fresh/tags/list").status_code == 200  # anyone pulls it
        assert client.get("/v2/fleet/app/tags/list").status_code == 401  # it stayed private
    assert visibility_of(reg, "fleet/app") == "private"

    # And back: new repositories are private again; fleet/fresh stays public.
    settings = page.get_by_role("region", name="Settings")
    settings.get_by_role("link", name="Make new repositories private").click()
    page.wait_for_url(f"{reg.url}/u/fleet/-/default-visibility?to=private")
    check(page)
    page.get_by_role("button", name="Make new repositories private").click()
    page.wait_for_url(f"{reg.url}/u/fleet")
    with reg.client() as client:
        push_image(client, "fleet/closed", "v1", basic("olga", PASSWORDS["olga"]))
        assert client.get("/v2/fleet/closed/tags/list").status_code == 401
        assert client.get("/v2/fleet/fresh/tags/list").status_code == 200


def test_members_and_others_see_what_the_api_shows_them(
    reg: AuthRegistry,
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
    sign_in: Callable[..., None],
) -> None:
    rita = new_context(viewport=PHONE).new_page()
    sign_in(rita, reg.url, "rita", PASSWORDS["rita"])
    visit(rita, f"{reg.url}/u/fleet")
    assert rita.get_by_role("region", name="Settings").count() == 0
    visit(rita, f"{reg.url}/u/fleet/-/members")
    assert rita.get_by_role("row").count() == 1 + len(FLEET)
    assert rita.get_by_role("button").filter(has_text="Add member").count() == 0
    assert rita.locator("main form").count() == 0
    visit(rita, f"{reg.url}/u/fleet/-/members/remove?user=mark", status=404)
    visit(rita, f"{reg.url}/u/fleet/-/default-visibility?to=public", status=404)
    # Her own namespace is hers to set.
    visit(rita, f"{reg.url}/u/rita")
    assert "are private" in rita.get_by_role("region", name="Settings").inner_text()

    nick = new_context().new_page()
    sign_in(nick, reg.url, "nick", PASSWORDS["nick"])
    missing = visit(nick, f"{reg.url}/u/no-such-org/-/members", status=404).body()
    assert visit(nick, f"{reg.url}/u/fleet/-/members", status=404).body() == missing
    # fleet's page shows its public repository, and nothing of an owner's or a member's.
    visit(nick, f"{reg.url}/u/fleet")
    assert nick.get_by_role("link", name="Members").count() == 0
    assert nick.get_by_role("region", name="Settings").count() == 0
    visit(nick, f"{reg.url}/u/rival")
    assert nick.get_by_role("link", name="Members").count() == 1

    with reg.client() as client:
        assert client.get("/api/v1/orgs/fleet/members", headers=auth("rita")).status_code == 200
        assert client.get("/api/v1/orgs/fleet/members", headers=auth("nick")).status_code == 403
        # Anonymous viewers are sent to sign in first, whether the organisation exists or not.
        for org in ("fleet", "no-such-org"):
            answer = client.get(f"/u/{org}/-/members")
            assert answer.status_code == 303
            assert answer.headers["location"] == f"/sign-in?next=/u/{org}/-/members"


FORMS = [
    ("/u/fleet/-/members", {"user": "pat", "role": "owner"}),
    ("/u/fleet/-/members", {"user": "olga", "role": "reader"}),
    ("/u/fleet/-/members/remove", {"user": "rita"}),
    ("/u/fleet/-/default-visibility", {"visibility": "public"}),
]


def unchanged(reg: AuthRegistry) -> None:
    """fleet's members as the fixture made them, and new repositories there private."""
    assert members_of(reg, "fleet") == FLEET
    assert members_of(reg, "rival") == [{"user": "nick", "role": "owner"}]
    assert visibility_of(reg, "fleet/app") == "private"
    with reg.client() as client:
        push_image(client, "fleet/probe", "v1", basic("olga", PASSWORDS["olga"]))
        assert client.get("/v2/fleet/probe/tags/list").status_code == 401
    assert visibility_of(reg, "fleet/probe") == "private"


def test_forms_without_the_sessions_token_or_from_another_site_change_nothing(
    reg: AuthRegistry,
) -> None:
    with session_of(reg, "olga") as (olga, token), reg.client() as stranger:
        foreign = csrf_of(stranger.get("/sign-in").text)
        for path, data in FORMS:
            for bad in (None, "", foreign, token + "x"):
                form = dict(data) if bad is None else {"csrf": bad, **data}
                answer = olga.post(path, data=form)
                assert answer.status_code == 403, (path, bad)
                assert "load it again" in answer.text
            elsewhere = olga.post(
                path,
                data={"csrf": token, **data},
                headers={"Origin": "https://evil.example"},
            )
            assert elsewhere.status_code == 403, path
            assert "other sites" in elsewhere.text
            # Not a form at all.
            as_json = olga.post(path, json={"csrf": token, **data})
            assert as_json.status_code == 415, path
        # Nobody signed in: refused too.
        anonymous = csrf_of(stranger.get("/sign-in").text)
        for path, data in FORMS:
            assert stranger.post(path, data={"csrf": anonymous, **data}).status_code == 403
    unchanged(reg)


def test_members_who_are_not_owners_and_other_organisations_change_nothing(
    reg: AuthRegistry,
) -> None:
    for user in ("rita", "mark", "nick", "pat"):
        with session_of(reg, user) as (client, token):
            for path, data in FORMS:
                answer = client.post(path, data={"csrf": token, **data})
                assert answer.status_code == 403, (user, path, answer.text[-300:])
                assert "owner" in answer.text
    with session_of(reg, "olga") as (olga, token):
        # Another organisation's forms, with olga's own valid session.
        for path, data in (
            ("/u/rival/-/members", {"user": "olga", "role": "owner"}),
            ("/u/rival/-/members/remove", {"user": "nick"}),
            ("/u/rival/-/default-visibility", {"visibility": "public"}),
            ("/u/nick/-/default-visibility", {"visibility": "public"}),
        ):
            answer = olga.post(path, data={"csrf": token, **data})
            assert answer.status_code == 403, (path, answer.text[-300:])
        # Another organisation's member named in fleet's form: not a member here.
        answer = olga.post("/u/fleet/-/members/remove", data={"csrf": token, "user": "nick"})
        assert answer.status_code == 404 and "not a member" in answer.text
        # A field naming another organisation is no part of the form: fleet is the path's.
        answer = olga.post(
            "/u/fleet/-/members",
            data={"csrf": token, "org": "rival", "user": "rita", "role": "reader"},
        )
        assert answer.status_code == 303
        assert olga.get("/u/rival/-/members").status_code == 404
    unchanged(reg)


def test_the_last_owner_stays_and_bad_input_is_a_clear_page(reg: AuthRegistry) -> None:
    with session_of(reg, "olga") as (olga, token):
        for path, data in (
            ("/u/fleet/-/members", {"user": "olga", "role": "maintainer"}),
            ("/u/fleet/-/members", {"user": "olga", "role": "reader"}),
            ("/u/fleet/-/members/remove", {"user": "olga"}),
        ):
            answer = olga.post(path, data={"csrf": token, **data})
            assert answer.status_code == 409, (path, data)
            assert "olga is the only owner of fleet" in answer.text
            assert 'role="alert"' in answer.text
        cases = [
            ("/u/fleet/-/members", {"user": "nobody-here", "role": "reader"}, 404, "no user"),
            ("/u/fleet/-/members", {"user": "", "role": "reader"}, 404, "no user"),
            ("/u/fleet/-/members", {"user": "Not A Name", "role": "reader"}, 404, "no user"),
            ("/u/fleet/-/members", {"user": "pa\x00t", "role": "reader"}, 404, "no user"),
            ("/u/fleet/-/members", {"user": "x" * 5000, "role": "reader"}, 404, "no user"),
            ("/u/fleet/-/members", {"user": "pat", "role": "god"}, 400, "Choose a role"),
            ("/u/fleet/-/members", {"user": "pat"}, 400, "Choose a role"),
            ("/u/fleet/-/members/remove", {"user": "nobody-here"}, 404, "not a member"),
            ("/u/fleet/-/members/remove", {}, 404, "not a member"),
            ("/u/fleet/-/default-visibility", {"visibility": "maybe"}, 400, "public or private"),
            ("/u/fleet/-/default-visibility", {}, 400, "public or private"),
            ("/u/no-such-org/-/default-visibility", {"visibility": "public"}, 403, "owners"),
        ]
        for path, data, status, says in cases:
            answer = olga.post(path, data={"csrf": token, **data})
            assert answer.status_code == status, (path, data, answer.text[-300:])
            assert says in answer.text, (path, data)
            assert "x" * 100 not in answer.text  # nothing of the input is echoed back
        oversized = olga.post(
            "/u/fleet/-/members", data={"csrf": token, "user": "p" * 70_000, "role": "reader"}
        )
        assert oversized.status_code == 413 and "too large" in oversized.text
        # Pages asked for with nonsense.
        assert olga.get("/u/fleet/-/default-visibility?to=maybe").status_code == 400
        assert olga.get("/u/fleet/-/members/remove?user=nobody-here").status_code == 404
        assert (
            olga.get("/u/fleet/-/members?done=Your+account+is+locked&user=olga").status_code == 200
        )
        assert "locked" not in olga.get("/u/fleet/-/members?done=locked&user=olga").text
    unchanged(reg)


def test_two_owners_demoting_each_other_at_once_leave_one(reg: AuthRegistry) -> None:
    admin = {"Authorization": admin_auth()}

    def make_owner(client: httpx.Client, user: str) -> None:
        answer = client.put(
            f"/api/v1/orgs/fleet/members/{user}", json={"role": "owner"}, headers=admin
        )
        assert answer.status_code == 200, answer.text

    with session_of(reg, "olga") as olga, session_of(reg, "pat") as pat, reg.client() as api:
        for round_ in range(4):
            make_owner(api, "olga")
            make_owner(api, "pat")
            if round_ % 2:
                posts = [
                    (olga, "/u/fleet/-/members", {"user": "pat", "role": "reader"}),
                    (pat, "/u/fleet/-/members", {"user": "olga", "role": "reader"}),
                ]
            else:
                posts = [
                    (olga, "/u/fleet/-/members/remove", {"user": "pat"}),
                    (pat, "/u/fleet/-/members/remove", {"user": "olga"}),
                ]
            with ThreadPoolExecutor(2) as pool:
                answers = list(
                    pool.map(
                        lambda post: post[0][0].post(post[1], data={"csrf": post[0][1], **post[2]}),
                        posts,
                    )
                )
            statuses = sorted(answer.status_code for answer in answers)
            # One wins; the other is refused as the last owner, or as no longer an owner.
            assert statuses[0] == 303 and statuses[1] in (403, 409), statuses
            owners = [m["user"] for m in members_of(reg, "fleet") if m["role"] == "owner"]
            assert len(owners) == 1, members_of(reg, "fleet")
        make_owner(api, "olga")
        assert api.delete("/api/v1/orgs/fleet/members/pat", headers=admin).status_code in (204, 404)
    assert members_of(reg, "fleet") == FLEET


def test_without_accounts_there_are_no_members_nor_defaults(
    web_registry: Callable[..., AuthRegistry],
    new_context: Callable[..., BrowserContext],
    visit: Callable[..., Response],
) -> None:
    """As `/api/v1` without accounts: nobody owns a namespace, so there is nothing to manage."""
    open_registry = web_registry(args=("--no-auth",))
    with httpx.Client(base_url=open_registry.url, timeout=30) as client:
        push_image(client, "team/app", "v1")
        page_html = client.get("/u/team").text
        assert "Settings" not in page_html and "/-/members" not in page_html
        token = csrf_of(client.get("/r/team/app/-/edit").text)
        for path, data in FORMS:
            path = path.replace("fleet", "team")
            assert client.post(path, data={"csrf": token, **data}).status_code == 404, path
    page = new_context().new_page()
    visit(page, f"{open_registry.url}/u/team")
    visit(page, f"{open_registry.url}/u/team/-/members", status=404)
    visit(page, f"{open_registry.url}/u/team/-/default-visibility?to=public", status=404)
