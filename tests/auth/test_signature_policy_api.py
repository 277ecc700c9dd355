"""`/api/v1/policies/signed/…` with accounts on: signature policies are set, read and removed by
the namespace's owners and administrators with their password, never by a member, another
account or an access token; keys, roots and modes are checked before anything is stored."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from dockyard.core import keys
from tests.auth.helpers import (
    AuthRegistry,
    admin_auth,
    basic,
    code_of,
    get_manifest,
    push_image,
)

POLICIES = "/api/v1/policies/signed"
OWNER = basic("sig-owner", "pw-sig-owner")
MEMBER = basic("sig-member", "pw-sig-member")
STRANGER = basic("sig-stranger", "pw-sig-stranger")


def public_pem() -> str:
    return keys.public_key_pem(keys.generate_private_key()).decode()


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    registry = start_auth_registry()
    for name in ("sig-owner", "sig-member", "sig-stranger"):
        registry.add_user(name, f"pw-{name}")
    with registry.client() as c:
        assert c.post("/api/v1/orgs", json={"name": "sigorg"}, headers={"Authorization": OWNER})
        member = c.put(
            "/api/v1/orgs/sigorg/members/sig-member",
            json={"role": "maintainer"},
            headers={"Authorization": OWNER},
        )
        assert member.status_code == 200
    return registry


def put(c: httpx.Client, scope: str, body: object, auth: str) -> httpx.Response:
    return c.put(f"{POLICIES}/{scope}", json=body, headers={"Authorization": auth})


def test_owner_sets_reads_and_removes_a_policy_that_is_enforced(reg: AuthRegistry) -> None:
    pem = public_pem()
    with reg.client() as c:
        digest, _ = push_image(c, "sigorg/app", "1.0", auth=MEMBER)
        first = put(c, "sigorg", {"keys": [pem]}, OWNER)
        assert first.status_code == 200, first.text
        stored = first.json()
        assert (stored["scope"], stored["mode"], stored["roots"]) == ("sigorg", "enforce", [])
        assert [key.strip() for key in stored["keys"]] == [pem.strip()]
        again = put(c, "sigorg", {"keys": [pem], "mode": "enforce"}, admin_auth())
        assert again.json()["version"] != stored["version"]

        pulled = get_manifest(c, "sigorg/app", "1.0", MEMBER)
        assert pulled.status_code == 403 and code_of(pulled) == "DENIED"
        assert pulled.json()["errors"][0]["message"] == (
            f"sigorg/app@{digest} has no valid signature required by the signature policy on sigorg"
        )
        assert put(c, "sigorg/app", {"keys": [pem], "mode": "warn"}, OWNER).status_code == 200
        warned = get_manifest(c, "sigorg/app", "1.0", MEMBER)
        assert warned.status_code == 200 and warned.headers["warning"].startswith("299 - ")

        listed = c.get(f"{POLICIES}/sigorg", headers={"Authorization": OWNER}).json()
        assert [(p["scope"], p["mode"]) for p in listed["policies"]] == [
            ("sigorg", "enforce"),
            ("sigorg/app", "warn"),
        ]
        # The CLI on the data folder sees the same policies.
        cli = reg.admin("policy", "signed", "list", "sigorg").stdout.splitlines()
        assert [line.split("\t")[:2] for line in cli] == [
            ["sigorg", "enforce"],
            ["sigorg/app", "warn"],
        ]
        for scope in ("sigorg/app", "sigorg"):
            gone = c.delete(f"{POLICIES}/{scope}", headers={"Authorization": OWNER})
            assert gone.status_code == 204
        again_gone = c.delete(f"{POLICIES}/sigorg", headers={"Authorization": OWNER})
        assert again_gone.status_code == 404 and code_of(again_gone) == "NOT_FOUND"
        assert get_manifest(c, "sigorg/app", "1.0", MEMBER).status_code == 200


def test_nobody_else_sets_or_removes_a_policy(reg: AuthRegistry) -> None:
    pem = public_pem()
    with reg.client() as c:
        assert put(c, "sigorg/kept", {"keys": [pem]}, OWNER).status_code == 200
        tokens = [
            basic("sig-owner", reg.create_token("sig-owner", f"sig-{scope}", scope))
            for scope in ("read", "delete")
        ]
        bearer = reg.bearer("repository:sigorg/kept:push,pull,delete", OWNER)
        for auth in (MEMBER, STRANGER, *tokens, bearer):
            for path in (f"{POLICIES}/sigorg", f"{POLICIES}/sigorg/kept"):
                refused = c.put(path, json={"keys": [pem]}, headers={"Authorization": auth})
                assert refused.status_code == 403 and code_of(refused) == "DENIED", refused.text
                removal = c.delete(path, headers={"Authorization": auth})
                assert removal.status_code == 403
        for auth in (MEMBER, STRANGER):
            assert c.get(f"{POLICIES}/sigorg", headers={"Authorization": auth}).status_code == 403
        assert c.get(f"{POLICIES}/sigorg").status_code == 401
        assert c.delete(f"{POLICIES}/sigorg/kept").status_code == 401
        # A stranger's own namespace is theirs, not a repository of it under another name.
        assert put(c, "sig-stranger", {"keys": [pem]}, STRANGER).status_code == 200
        assert put(c, "sigorg/sig-stranger", {"keys": [pem]}, STRANGER).status_code == 403
        kept = c.get(f"{POLICIES}/sigorg", headers={"Authorization": OWNER}).json()["policies"]
        assert [p["scope"] for p in kept] == ["sigorg/kept"]
        assert c.delete(f"{POLICIES}/sigorg/kept", headers={"Authorization": OWNER}).status_code


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"keys": ["not a key"]}, "key 1 is not a public key: not a PEM public key"),
        ({"keys": ["PEM", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]}, None),
        ({"keys": []}, "a signature policy names at least one public key or trust-store root"),
        ({}, "a signature policy names at least one public key or trust-store root"),
        ({"keys": "one"}, "`keys` is a list of PEM texts"),
        ({"keys": [5]}, "key 1 is not PEM text"),
        ({"roots": ["junk"]}, "root 1 is not a PEM X.509 certificate"),
        ({"keys": ["x" * 20_000]}, "key 1 is longer than 16384 characters"),
        ({"keys": ["k"] * 33}, "a signature policy names at most 32 keys"),
        ({"keys": "VALID", "mode": "strict"}, "mode 'strict' is not one of enforce, warn, off"),
        ({"keys": "VALID", "mode": 1}, "`mode` is enforce, warn or off"),
    ],
)
def test_malformed_policies_are_bad_requests(
    reg: AuthRegistry, body: dict, message: str | None
) -> None:
    if body.get("keys") == "VALID":
        body = {**body, "keys": [public_pem()]}
    with reg.client() as c:
        refused = put(c, "sigorg", body, OWNER)
        assert refused.status_code == 400 and code_of(refused) == "BAD_REQUEST", refused.text
        if message is not None:
            assert refused.json()["errors"][0]["message"] == message
        listed = c.get(f"{POLICIES}/sigorg", headers={"Authorization": OWNER}).json()
        assert listed["policies"] == [], "nothing was stored"


def test_oversized_and_non_json_bodies(reg: AuthRegistry) -> None:
    with reg.client() as c:
        owner = {"Authorization": OWNER}
        huge = c.put(
            f"{POLICIES}/sigorg",
            content=b'{"keys": ["' + b"k" * 2_000_000 + b'"]}',
            headers={**owner, "Content-Type": "application/json"},
        )
        assert huge.status_code == 413
        assert c.put(f"{POLICIES}/sigorg", content=b"k", headers=owner).status_code == 415
        bad_scope = put(c, "Sig..Org", {"keys": [public_pem()]}, OWNER)
        assert bad_scope.status_code == 400 and code_of(bad_scope) == "NAME_INVALID"
