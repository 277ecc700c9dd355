"""The catalog and tag lists with accounts on, now that a page is remembered until the next
commit: what one caller was shown is never shown to another who may not pull it, and a change
of who may see what counts at once (visibility) or within the access delay (membership).

The page the store remembers holds every name; the filter by the caller's rights runs on
every request. These tests try to get a remembered page past it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.auth.helpers import (
    AuthRegistry,
    admin_auth,
    basic,
    push_image,
    settle_access,
)

PUBLIC, PRIVATE, SECRET, PERSONAL = (
    "acme/public-app",
    "acme/private-app",
    "acme/secret-app",
    "owen/personal",
)
EVERY = sorted([PUBLIC, PRIVATE, SECRET, PERSONAL])
RITA, OTTO, OWEN = ("rita", "rita-pw-3x"), ("otto", "otto-pw-4x"), ("owen", "owen-pw-1x")
CATALOG = "registry:catalog:*"


@dataclass
class World:
    reg: AuthRegistry
    http: httpx.Client


@pytest.fixture(scope="module")
def world(start_auth_registry: Callable[..., AuthRegistry]) -> Iterator[World]:
    reg = start_auth_registry()
    for user in (RITA, OTTO, OWEN):
        reg.add_user(*user)
    reg.admin("org", "create", "acme", "--owner", "owen")
    with reg.client() as http:
        for repo in EVERY:
            push_image(http, repo, "v1")
        reg.admin("repo", "visibility", PUBLIC, "public")
        yield World(reg, http)


def walk(world: World, auth: str | None, n: int) -> list[str]:
    """Every page of the catalog by `n`, following Link; no Link may name a hidden name."""
    headers = {"Authorization": auth} if auth else {}
    seen: list[str] = []
    url: str | None = f"/v2/_catalog?n={n}"
    while url is not None:
        response = world.http.get(url, headers=headers)
        assert response.status_code == 200, response.text
        seen += response.json()["repositories"]
        link = response.headers.get("Link")
        url = link.split(">")[0].lstrip("<") if link else None
        if url is not None:
            assert httpx.URL(url).params["last"] in seen, link
        assert len(seen) <= len(EVERY)
    return seen


def anonymous(world: World) -> str:
    return world.reg.bearer(CATALOG)


def test_a_page_shown_to_the_administrator_is_filtered_again_for_everyone_else(
    world: World,
) -> None:
    for _ in range(2):  # the pages are remembered from the first round on
        for n in (1, 2, 100):
            assert walk(world, admin_auth(), n) == EVERY
            assert walk(world, anonymous(world), n) == [PUBLIC]
            assert walk(world, basic(*OTTO), n) == [PUBLIC]
            assert walk(world, basic(*OWEN), n) == EVERY


def test_a_token_asking_for_another_namespace_sees_no_more_of_it(world: World) -> None:
    walk(world, admin_auth(), 100)
    for asked in (PRIVATE, PERSONAL, "acme/*"):
        scopes = [CATALOG, f"repository:{asked}:pull"]
        assert walk(world, world.reg.bearer(scopes, basic(*OTTO)), 2) == [PUBLIC], asked
        assert walk(world, world.reg.bearer(scopes), 2) == [PUBLIC], asked


def test_a_repository_made_private_leaves_the_catalog_at_the_next_request(world: World) -> None:
    auth = anonymous(world)
    try:
        for visibility, shown in (("private", []), ("public", [PUBLIC]), ("private", [])):
            walk(world, admin_auth(), 1)  # remembered with every name
            world.reg.admin("repo", "visibility", PUBLIC, visibility)
            assert walk(world, auth, 1) == shown, visibility
            assert walk(world, basic(*OTTO), 100) == shown, visibility
            response = world.http.get("/v2/_catalog", headers={"Authorization": auth})
            assert response.json() == {"repositories": shown}
    finally:
        world.reg.admin("repo", "visibility", PUBLIC, "public")


def test_a_member_removed_between_two_pages_sees_no_more_private_names(world: World) -> None:
    world.reg.admin("org", "add-member", "acme", "rita", "--role", "reader")
    settle_access()
    token = world.reg.bearer(CATALOG, basic(*RITA))
    try:
        for auth in (basic(*RITA), token):
            first = world.http.get("/v2/_catalog?n=1", headers={"Authorization": auth})
            assert first.json() == {"repositories": [PRIVATE]}
        link = first.headers["Link"].split(">")[0].lstrip("<")
        world.reg.admin("org", "remove-member", "acme", "rita")
        settle_access()
        rest = world.http.get(link, headers={"Authorization": basic(*RITA)})
        assert rest.status_code == 200, rest.text
        assert rest.json() == {"repositories": [PUBLIC]}
        # the token minted while she was a member is void; a new one sees what she may see
        stale = world.http.get(link, headers={"Authorization": token})
        assert stale.status_code == 401 and PRIVATE not in stale.text
        for auth in (basic(*RITA), world.reg.bearer(CATALOG, basic(*RITA))):
            assert walk(world, auth, 1) == [PUBLIC]
    finally:
        world.reg.admin("org", "remove-member", "acme", "rita", ok=False)


def test_a_private_tag_list_read_by_its_owner_is_not_shown_to_others(world: World) -> None:
    for _ in range(2):
        owner = world.http.get(f"/v2/{PRIVATE}/tags/list", headers={"Authorization": basic(*OWEN)})
        assert owner.json() == {"name": PRIVATE, "tags": ["v1"]}
        for auth in (basic(*OTTO), None):
            headers = {"Authorization": auth} if auth else {}
            response = world.http.get(f"/v2/{PRIVATE}/tags/list", headers=headers)
            assert response.status_code == 401, response.text
            assert "v1" not in response.text
