"""`/api/v1/policies/…` with accounts on. Immutable tag rules: owners and administrators only,
with their password; patterns checked; a push with a bearer token meets the rule like any
other. Quotas: set by administrators, read by owners; a push past one is told the usage."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.auth.helpers import (
    AuthRegistry,
    admin_auth,
    basic,
    code_of,
    config_blob,
    manifest_for,
    push_image,
    put_manifest,
    upload_blob,
)

RULES = "/api/v1/policies/immutable"
NO_BACKGROUND_ROUND = {
    "DOCKYARD_GC_INTERVAL_SECONDS": "86400",
    "DOCKYARD_UPLOAD_PURGE_INTERVAL_SECONDS": "86400",
}


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    # The background round (collection, retention) runs at start and then once a day: a round
    # between a stored policy and `policy retention run` would leave that run nothing to remove.
    registry = start_auth_registry(env=NO_BACKGROUND_ROUND)
    registry.add_user("imm-owner", "pw-imm-owner")
    registry.add_user("imm-member", "pw-imm-member")
    registry.add_user("imm-stranger", "pw-imm-stranger")
    with registry.client() as c:
        owner = {"Authorization": basic("imm-owner", "pw-imm-owner")}
        assert c.post("/api/v1/orgs", json={"name": "immorg"}, headers=owner).status_code == 201
        member = c.put(
            "/api/v1/orgs/immorg/members/imm-member", json={"role": "maintainer"}, headers=owner
        )
        assert member.status_code == 200
    return registry


OWNER = basic("imm-owner", "pw-imm-owner")
MEMBER = basic("imm-member", "pw-imm-member")
STRANGER = basic("imm-stranger", "pw-imm-stranger")


def add(c: httpx.Client, scope: str, pattern: str, auth: str) -> httpx.Response:
    return c.put(f"{RULES}/{scope}", json={"pattern": pattern}, headers={"Authorization": auth})


def test_owner_sets_lists_and_removes_rules(reg: AuthRegistry) -> None:
    with reg.client() as c:
        assert add(c, "immorg", "v*", OWNER).status_code == 201
        assert add(c, "immorg", "v*", OWNER).status_code == 200  # already there
        assert add(c, "immorg/app", "release-*", admin_auth()).status_code == 201
        assert add(c, "imm-owner", "stable", OWNER).status_code == 201  # their own namespace
        listed = c.get(f"{RULES}/immorg", headers={"Authorization": OWNER}).json()["rules"]
        assert [(r["scope"], r["pattern"]) for r in listed] == [
            ("immorg", "v*"),
            ("immorg/app", "release-*"),
        ]
        gone = c.delete(
            f"{RULES}/immorg/app", params={"pattern": "release-*"}, headers={"Authorization": OWNER}
        )
        assert gone.status_code == 204
        again = c.delete(
            f"{RULES}/immorg/app", params={"pattern": "release-*"}, headers={"Authorization": OWNER}
        )
        assert again.status_code == 404 and code_of(again) == "NOT_FOUND"
        # The CLI on the data folder sees the same rules.
        assert reg.admin("policy", "immutable", "list", "immorg").stdout == "immorg\tv*\n"


def test_others_cannot_touch_a_namespace_rules(reg: AuthRegistry) -> None:
    with reg.client() as c:
        for auth in (MEMBER, STRANGER):
            refused = add(c, "immorg", "*", auth)
            assert refused.status_code == 403 and code_of(refused) == "DENIED"
            listing = c.get(f"{RULES}/immorg", headers={"Authorization": auth})
            assert listing.status_code == 403
            removal = c.delete(
                f"{RULES}/immorg", params={"pattern": "v*"}, headers={"Authorization": auth}
            )
            assert removal.status_code == 403
        # A stranger's own namespace is theirs; nobody else's repository under it is.
        assert add(c, "immorg/imm-stranger", "*", STRANGER).status_code == 403
        assert c.get(f"{RULES}/immorg").status_code == 401
        # An access token, even one with delete scope, is for images, not settings.
        for scope in ("read", "delete"):
            token = reg.create_token("imm-owner", f"imm-{scope}", scope)
            with_token = add(c, "immorg", "*", basic("imm-owner", token))
            assert with_token.status_code == 403, with_token.text
        bearer = reg.bearer("repository:immorg/app:push,pull", OWNER)
        assert add(c, "immorg", "*", bearer).status_code == 403
        rules = c.get(f"{RULES}/immorg", headers={"Authorization": OWNER}).json()["rules"]
        assert [r["pattern"] for r in rules] == ["v*"]


@pytest.mark.parametrize(
    "pattern", ["**", "v[0-9]*", "(v|r)*", "v+", "^v$", "a\\d", "x" * 129, "v*" * 100, ""]
)
def test_invalid_patterns_are_bad_requests(reg: AuthRegistry, pattern: str) -> None:
    with reg.client() as c:
        refused = add(c, "immorg", pattern, OWNER)
        assert refused.status_code == 400 and code_of(refused) == "BAD_REQUEST", refused.text


def test_malformed_requests(reg: AuthRegistry) -> None:
    with reg.client() as c:
        owner = {"Authorization": OWNER}
        assert c.put(f"{RULES}/immorg", json={"pattern": 5}, headers=owner).status_code == 400
        assert c.put(f"{RULES}/immorg", json=["v*"], headers=owner).status_code == 400
        assert c.put(f"{RULES}/immorg", content=b"v*", headers=owner).status_code == 415
        assert c.delete(f"{RULES}/immorg", headers=owner).status_code == 400
        bad_scope = add(c, "Imm..Org", "v*", OWNER)
        assert bad_scope.status_code == 400 and code_of(bad_scope) == "NAME_INVALID"
        huge = c.put(
            f"{RULES}/immorg",
            content=b'{"pattern": "' + b"v" * 100_000 + b'"}',
            headers={**owner, "Content-Type": "application/json"},
        )
        assert huge.status_code == 413


def test_a_push_with_a_token_meets_the_rule(reg: AuthRegistry) -> None:
    with reg.client() as c:
        assert add(c, "immorg", "v*", OWNER).status_code in (200, 201)
        first, _ = push_image(c, "immorg/tool", "v1", auth=MEMBER)
        bearer = reg.bearer("repository:immorg/tool:push,pull,delete", MEMBER)
        config = config_blob()
        assert upload_blob(c, "immorg/tool", config, bearer).status_code == 201
        moved = put_manifest(c, "immorg/tool", "v1", manifest_for(config), bearer)
        assert moved.status_code == 403 and code_of(moved) == "DENIED"
        assert moved.json()["errors"][0]["message"] == ("tag v1 is immutable (rule `v*` on immorg)")
        deleted = c.delete(f"/v2/immorg/tool/manifests/{first}", headers={"Authorization": bearer})
        assert deleted.status_code == 403 and code_of(deleted) == "DENIED"


# -- quotas ---------------------------------------------------------------------------------------
QUOTA = "/api/v1/policies/quota"


def test_administrators_set_quotas_owners_read_them(reg: AuthRegistry) -> None:
    with reg.client() as c:
        admin = {"Authorization": admin_auth()}
        set_ = c.put(f"{QUOTA}/immorg", json={"limit": "10GiB"}, headers=admin)
        assert set_.status_code == 200, set_.text
        assert set_.json()["limit"] == 10 * 1024**3
        as_owner = c.get(f"{QUOTA}/immorg", headers={"Authorization": OWNER})
        assert as_owner.status_code == 200 and as_owner.json()["limit"] == 10 * 1024**3
        # An owner raising their own quota would make it no limit.
        raised = c.put(f"{QUOTA}/immorg", json={"limit": None}, headers={"Authorization": OWNER})
        assert raised.status_code == 403 and code_of(raised) == "DENIED"
        for auth in (MEMBER, STRANGER):
            assert c.get(f"{QUOTA}/immorg", headers={"Authorization": auth}).status_code == 403
            assert (
                c.put(f"{QUOTA}/immorg", json={"limit": 1}, headers={"Authorization": auth})
            ).status_code == 403
        token = reg.create_token("admin", "quota-delete", "delete")
        with_token = c.put(
            f"{QUOTA}/immorg", json={"limit": 1}, headers={"Authorization": basic("admin", token)}
        )
        assert with_token.status_code == 403
        assert c.get(f"{QUOTA}/immorg").status_code == 401
        for bad in ("lots", "-1", -5, True, 1.5, [1], "1" * 40, "10 GiBs"):
            answer = c.put(f"{QUOTA}/immorg", json={"limit": bad}, headers=admin)
            assert answer.status_code == 400 and code_of(answer) == "BAD_REQUEST", (
                bad,
                answer.text,
            )
        assert c.put(f"{QUOTA}/immorg", json={}, headers=admin).status_code == 400
        assert c.get(f"{QUOTA}/immorg", headers=admin).json()["limit"] == 10 * 1024**3
        removed = c.put(f"{QUOTA}/immorg", json={"limit": None}, headers=admin)
        assert removed.json()["limit"] is None


def test_a_push_past_the_quota_is_refused_with_the_usage(reg: AuthRegistry) -> None:
    with reg.client() as c:
        admin = {"Authorization": admin_auth()}
        assert c.put(f"{QUOTA}/imm-member", json={"limit": 200}, headers=admin).status_code == 200
        config = config_blob()
        assert len(config) < 200
        assert upload_blob(c, "imm-member/app", config, MEMBER).status_code == 201
        refused = upload_blob(c, "imm-member/app", b"x" * 150, MEMBER)
        assert refused.status_code == 403 and code_of(refused) == "DENIED"
        used = len(config) + 150
        assert refused.json()["errors"][0]["message"] == (
            f"quota exceeded: {used} B of 200 B used in imm-member"
        )
        shown = c.get(f"{QUOTA}/imm-member", headers={"Authorization": MEMBER}).json()
        assert (shown["used"], shown["limit"]) == (len(config), 200)
        assert reg.admin("policy", "quota", "show", "imm-member").stdout == (
            f"imm-member: {len(config)} B used, quota 200 B\n"
        )


# -- retention ------------------------------------------------------------------------------------
RETENTION = "/api/v1/policies/retention"


def test_retention_is_tried_then_set_by_owners(reg: AuthRegistry) -> None:
    with reg.client() as c:
        for tag in ("old-1", "old-2", "new"):
            push_image(c, "immorg/kept", tag, auth=MEMBER)
        owner = {"Authorization": OWNER}
        body = {"keep_last": 1}
        tried = c.put(
            f"{RETENTION}/immorg/kept", json=body, params={"dry_run": "true"}, headers=owner
        )
        assert tried.status_code == 200, tried.text
        assert tried.json()["dry_run"] is True
        assert [e["tag"] for e in tried.json()["expiring"]] == ["old-2", "old-1"]
        assert c.get(f"{RETENTION}/immorg", headers=owner).json() == {
            "policies": [],
            "expiring": [],
        }
        listed = c.get("/v2/immorg/kept/tags/list", headers=owner).json()["tags"]
        assert listed == ["new", "old-1", "old-2"], "a dry run changes nothing"
        stored = c.put(f"{RETENTION}/immorg/kept", json=body, headers=owner)
        assert stored.status_code == 200 and stored.json()["dry_run"] is False
        shown = c.get(f"{RETENTION}/immorg", headers=owner).json()
        assert shown["policies"] == [
            {"scope": "immorg/kept", "keep_last": 1, "older_than_seconds": None, "keep": None}
        ]
        assert [e["tag"] for e in shown["expiring"]] == ["old-2", "old-1"]
        assert reg.admin("policy", "retention", "run", "immorg").stdout.splitlines()[-1] == (
            "removed 2 tags"
        )
        assert c.get("/v2/immorg/kept/tags/list", headers=owner).json()["tags"] == ["new"]
        assert c.delete(f"{RETENTION}/immorg/kept", headers=owner).status_code == 204
        gone = c.delete(f"{RETENTION}/immorg/kept", headers=owner)
        assert gone.status_code == 404 and code_of(gone) == "NOT_FOUND"


def test_others_cannot_set_or_read_retention(reg: AuthRegistry) -> None:
    with reg.client() as c:
        for auth in (MEMBER, STRANGER):
            headers = {"Authorization": auth}
            assert (
                c.put(f"{RETENTION}/immorg", json={"keep_last": 0}, headers=headers).status_code
                == 403
            )
            assert c.get(f"{RETENTION}/immorg", headers=headers).status_code == 403
            assert c.delete(f"{RETENTION}/immorg", headers=headers).status_code == 403
        token = reg.create_token("imm-owner", "retention-delete", "delete")
        with_token = c.put(
            f"{RETENTION}/immorg",
            json={"keep_last": 0},
            headers={"Authorization": basic("imm-owner", token)},
        )
        assert with_token.status_code == 403
        owner = {"Authorization": OWNER}
        for bad in (
            {},
            {"keep_last": -1},
            {"keep_last": "3"},
            {"keep_last": True},
            {"older_than": "30"},
            {"older_than": 30},
            {"keep_last": 1, "keep": "[v]*"},
            {"keep_last": 10**12},
        ):
            answer = c.put(f"{RETENTION}/immorg", json=bad, headers=owner)
            assert answer.status_code == 400 and code_of(answer) == "BAD_REQUEST", (
                bad,
                answer.text,
            )
        assert c.get(f"{RETENTION}/immorg", headers=owner).json()["policies"] == []
