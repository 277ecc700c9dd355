"""`/api/v1`: the account API: who am I, access tokens, users, organisations, visibility."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.auth.helpers import AuthRegistry, admin_auth, basic, code_of, push_image


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    return start_auth_registry()


def test_me_and_anonymous(reg: AuthRegistry) -> None:
    with reg.client() as c:
        me = c.get("/api/v1/me", headers={"Authorization": admin_auth()}).json()
        assert me["name"] == "admin" and me["admin"] is True
        anonymous = c.get("/api/v1/me")
        assert anonymous.status_code == 401 and code_of(anonymous) == "UNAUTHORIZED"


def test_users_are_admin_only(reg: AuthRegistry) -> None:
    with reg.client() as c:
        made = c.post(
            "/api/v1/users",
            json={"name": "api-user", "password": "pw-api-user"},
            headers={"Authorization": admin_auth()},
        )
        assert made.status_code == 201
        again = c.post(
            "/api/v1/users",
            json={"name": "api-user", "password": "x"},
            headers={"Authorization": admin_auth()},
        )
        assert again.status_code == 409
        as_user = {"Authorization": basic("api-user", "pw-api-user")}
        assert c.get("/api/v1/users", headers=as_user).status_code == 403
        assert (
            c.post(
                "/api/v1/users", json={"name": "x", "password": "y"}, headers=as_user
            ).status_code
            == 403
        )
        # A user may change their own password, not anyone else's.
        assert (
            c.put(
                "/api/v1/users/api-user",
                json={"password": "pass-new", "current_password": "pw-api-user"},
                headers=as_user,
            ).status_code
            == 204
        )
        assert c.get("/api/v1/me", headers=as_user).status_code == 401
        as_user = {"Authorization": basic("api-user", "pass-new")}
        assert (
            c.put("/api/v1/users/admin", json={"password": "hijack"}, headers=as_user).status_code
            == 403
        )
        listed = c.get("/api/v1/users", headers={"Authorization": admin_auth()}).json()
        assert "api-user" in [u["name"] for u in listed["users"]]
        assert (
            c.delete("/api/v1/users/api-user", headers={"Authorization": admin_auth()}).status_code
            == 204
        )
        assert c.get("/api/v1/me", headers=as_user).status_code == 401


def test_tokens_created_used_listed_revoked(reg: AuthRegistry) -> None:
    reg.add_user("tok-owner", "pw-tok-owner")
    password = {"Authorization": basic("tok-owner", "pw-tok-owner")}
    with reg.client() as c:
        made = c.post("/api/v1/tokens", json={"name": "ci", "scope": "write"}, headers=password)
        assert made.status_code == 201
        secret = made.json()["token"]
        assert secret.startswith("dyt_") and made.json()["scope"] == "write"
        with_token = {"Authorization": basic("tok-owner", secret)}
        assert c.get("/api/v1/me", headers=with_token).json()["token_scope"] == "write"
        # A token cannot mint tokens.
        minted = c.post("/api/v1/tokens", json={"name": "more"}, headers=with_token)
        assert minted.status_code == 403 and code_of(minted) == "DENIED"
        push_image(c, "tok-owner/app", "v1", auth=basic("tok-owner", secret))
        listed = c.get("/api/v1/tokens", headers=password).json()["tokens"]
        assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]
        assert c.delete("/api/v1/tokens/ci", headers=password).status_code == 204
        assert c.get("/api/v1/me", headers=with_token).status_code == 401
        refused = reg.token_response("repository:tok-owner/app:pull", basic("tok-owner", secret))
        assert refused.status_code == 401
        for bad in ({"name": "x", "scope": "admin"}, {"name": "y", "expires_in": -5}, []):
            assert c.post("/api/v1/tokens", json=bad, headers=password).status_code == 400


def test_members_are_listed_to_members_and_the_last_owner_stays(reg: AuthRegistry) -> None:
    for user in ("crew-owner", "crew-hand", "crew-outsider"):
        reg.add_user(user, f"pw-{user}")
    owner = {"Authorization": basic("crew-owner", "pw-crew-owner")}
    hand = {"Authorization": basic("crew-hand", "pw-crew-hand")}
    outsider = {"Authorization": basic("crew-outsider", "pw-crew-outsider")}
    with reg.client() as c:
        assert c.post("/api/v1/orgs", json={"name": "crew"}, headers=owner).status_code == 201
        path = "/api/v1/orgs/crew/members/crew-hand"
        assert c.put(path, json={"role": "reader"}, headers=owner).status_code == 200
        expected = {
            "org": "crew",
            "members": [
                {"user": "crew-hand", "role": "reader"},
                {"user": "crew-owner", "role": "owner"},
            ],
        }
        for who in (owner, hand, {"Authorization": admin_auth()}):
            listed = c.get("/api/v1/orgs/crew/members", headers=who)
            assert listed.status_code == 200 and listed.json() == expected
        # To others, a missing organisation and another's look the same.
        for org in ("crew", "no-such-org"):
            assert c.get(f"/api/v1/orgs/{org}/members", headers=outsider).status_code == 403
        assert c.get("/api/v1/orgs/crew/members").status_code == 401
        missing = c.get("/api/v1/orgs/no-such-org/members", headers={"Authorization": admin_auth()})
        assert missing.status_code == 404

        own = "/api/v1/orgs/crew/members/crew-owner"
        for refused in (
            c.put(own, json={"role": "maintainer"}, headers=owner),
            c.delete(own, headers=owner),
            c.delete(own, headers={"Authorization": admin_auth()}),
        ):
            assert refused.status_code == 409, refused.text
            assert "only owner of crew" in refused.json()["errors"][0]["message"]
        assert c.get("/api/v1/orgs/crew/members", headers=owner).json() == expected
        # With a second owner, the first may step down.
        assert c.put(path, json={"role": "owner"}, headers=owner).status_code == 200
        assert c.delete(own, headers=owner).status_code == 204
        assert c.get("/api/v1/orgs/crew/members", headers=hand).json()["members"] == [
            {"user": "crew-hand", "role": "owner"}
        ]


def test_a_namespaces_default_visibility_reaches_only_new_repositories(reg: AuthRegistry) -> None:
    reg.add_user("dv-owner", "pw-dv-owner")
    reg.add_user("dv-reader", "pw-dv-reader")
    owner = {"Authorization": basic("dv-owner", "pw-dv-owner")}
    reader = {"Authorization": basic("dv-reader", "pw-dv-reader")}
    path = "/api/v1/namespaces/dvorg/default-visibility"
    with reg.client() as c:
        assert c.post("/api/v1/orgs", json={"name": "dvorg"}, headers=owner).status_code == 201
        member = c.put(
            "/api/v1/orgs/dvorg/members/dv-reader", json={"role": "reader"}, headers=owner
        )
        assert member.status_code == 200
        push_image(c, "dvorg/old", "v1", auth=basic("dv-owner", "pw-dv-owner"))
        token = c.post(
            "/api/v1/tokens", json={"name": "dv", "scope": "delete"}, headers=owner
        ).json()["token"]
        for who in (reader, {"Authorization": basic("dv-owner", token)}):
            refused = c.put(path, json={"visibility": "public"}, headers=who)
            assert refused.status_code == 403, refused.text
        for bad in ({"visibility": "maybe"}, {"visibility": 5}, {}, {"visibility": ["public"]}):
            assert c.put(path, json=bad, headers=owner).status_code == 400, bad
        made = c.put(path, json={"visibility": "public"}, headers=owner)
        assert made.status_code == 200
        assert made.json() == {"namespace": "dvorg", "default_visibility": "public"}
        push_image(c, "dvorg/new", "v1", auth=basic("dv-owner", "pw-dv-owner"))
        assert c.get("/v2/dvorg/new/tags/list").status_code == 200
        assert c.get("/v2/dvorg/old/tags/list").status_code == 401  # kept what it had
        back = c.put(path, json={"visibility": None}, headers=owner)
        assert back.json() == {"namespace": "dvorg", "default_visibility": "private"}
        assert c.get("/v2/dvorg/new/tags/list").status_code == 200
        # Another's namespace, and one nobody has.
        assert (
            c.put(
                "/api/v1/namespaces/dv-reader/default-visibility",
                json={"visibility": "public"},
                headers=owner,
            ).status_code
            == 403
        )
        missing = c.put(
            "/api/v1/namespaces/no-such-ns/default-visibility",
            json={"visibility": "public"},
            headers={"Authorization": admin_auth()},
        )
        assert missing.status_code == 404


def test_orgs_members_and_visibility(reg: AuthRegistry) -> None:
    reg.add_user("org-founder", "pw-founder")
    reg.add_user("org-reader", "pw-reader")
    founder = {"Authorization": basic("org-founder", "pw-founder")}
    reader = {"Authorization": basic("org-reader", "pw-reader")}
    with reg.client() as c:
        assert c.post("/api/v1/orgs", json={"name": "apiorg"}, headers=founder).status_code == 201
        push_image(c, "apiorg/app", "v1", auth=basic("org-founder", "pw-founder"))
        assert c.get("/v2/apiorg/app/tags/list", headers=reader).status_code == 401
        added = c.put(
            "/api/v1/orgs/apiorg/members/org-reader", json={"role": "reader"}, headers=founder
        )
        assert added.status_code == 200
        assert c.get("/v2/apiorg/app/tags/list", headers=reader).json()["tags"] == ["v1"]
        assert (
            c.put(
                "/api/v1/orgs/apiorg/members/org-reader", json={"role": "god"}, headers=founder
            ).status_code
            == 400
        )
        # A reader manages nothing.
        assert (
            c.put(
                "/api/v1/repositories/apiorg/app/visibility",
                json={"visibility": "public"},
                headers=reader,
            ).status_code
            == 403
        )
        assert (
            c.delete("/api/v1/orgs/apiorg/members/org-reader", headers=founder).status_code == 204
        )
        assert c.get("/v2/apiorg/app/tags/list").status_code == 401
        made_public = c.put(
            "/api/v1/repositories/apiorg/app/visibility",
            json={"visibility": "public"},
            headers=founder,
        )
        assert made_public.status_code == 200
        assert c.get("/v2/apiorg/app/tags/list").json()["tags"] == ["v1"]
        assert (
            c.put(
                "/api/v1/repositories/apiorg/app/visibility",
                json={"visibility": "secret"},
                headers=founder,
            ).status_code
            == 400
        )
