"""Bearer tokens: what the token endpoint issues, and every way of tampering with one.

The registry runs with one worker here, so that what one request leaves in the server's memory
(caches of checked credentials) is seen by the next one: revocation and password changes must
take effect at the next token request regardless.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.assembly import open_registry
from dockyard.auth.gate import IDENTITY_CACHE_SECONDS
from dockyard.auth.tokens import libtrust_key_id
from dockyard.config import load_settings
from tests.auth.helpers import (
    SERVICE,
    AuthRegistry,
    basic,
    code_of,
    config_blob,
    get_manifest,
    jwt_parts,
    push_image,
    sha256,
    upload_blob,
)

PASSWORDS = {
    "alice": "alice-pw",
    "bob": "bob-pass",
    "carol": "carol-pw",
    "dave": "dave-pass",
    "erin": "erin-pass",
}
ALICE = basic("alice", PASSWORDS["alice"])
BOB = basic("bob", PASSWORDS["bob"])


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    reg = start_auth_registry(env={"DOCKYARD_WORKERS": "1"})
    for name, password in PASSWORDS.items():
        reg.add_user(name, password)
    with reg.client() as http:
        push_image(http, "alice/app", "v1", auth=ALICE)
        push_image(http, "bob/secret", "v1", auth=BOB)
        push_image(http, "bob/public", "v1", auth=BOB)
    reg.admin("repo", "visibility", "bob/public", "public")
    return reg


@pytest.fixture(scope="module")
def signing_key(reg: AuthRegistry) -> ec.EllipticCurvePrivateKey:
    pem = (reg.data_dir / "auth" / "token-signing-key.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def token_of(
    reg: AuthRegistry, scopes: list[str] | str, auth: str | None = ALICE, **params: str
) -> dict[str, Any]:
    response = reg.token_response(scopes, auth, **params)
    assert response.status_code == 200, response.text
    return response.json()


def post_token(reg: AuthRegistry, **form: str) -> httpx.Response:
    return httpx.post(
        reg.realm, data={"service": SERVICE, "client_id": "tests", **form}, timeout=30.0
    )


def pull(reg: AuthRegistry, repo: str, token: str) -> httpx.Response:
    with reg.client() as http:
        return get_manifest(http, repo, "v1", f"Bearer {token}")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}." + b64(
        signature
    )


def assert_invalid_token(reg: AuthRegistry, response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert code_of(response) == "UNAUTHORIZED"
    assert response.headers["WWW-Authenticate"] == reg.challenge(error="invalid_token")


# -- what is issued ---------------------------------------------------------------------------


def test_token_is_an_es256_jwt_from_the_key_in_the_data_folder(
    reg: AuthRegistry, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    response = reg.token_response("repository:alice/app:pull,push", ALICE)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert body["scope"] == "repository:alice/app:pull,push"
    assert body["issued_at"].endswith("Z")
    assert "refresh_token" not in body

    header, _ = jwt_parts(body["token"])
    assert header == {
        "alg": "ES256",
        "kid": libtrust_key_id(signing_key.public_key()),
        "typ": "JWT",
    }
    claims = jwt.decode(
        body["token"],
        signing_key.public_key(),
        algorithms=["ES256"],
        audience=SERVICE,
        issuer=SERVICE,
    )
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["iat"] == 300
    assert claims["access"] == [
        {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}
    ]
    assert pull(reg, "alice/app", body["token"]).status_code == 200


def test_a_token_forged_with_the_real_key_is_accepted(
    reg: AuthRegistry, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    """Control for the tampering tests: the forging helper itself makes working tokens, so
    each refusal below is due to the one thing changed."""
    _, claims = jwt_parts(token_of(reg, "repository:alice/app:pull")["token"])
    claims["jti"] = "forged-but-valid"
    forged = jwt.encode(
        claims,
        signing_key,
        algorithm="ES256",
        headers={"kid": libtrust_key_id(signing_key.public_key())},
    )
    assert pull(reg, "alice/app", forged).status_code == 200


def tampered(reg: AuthRegistry, key: ec.EllipticCurvePrivateKey, how: str) -> tuple[str, str]:
    """(token, repository to pull with it) for one kind of tampering."""
    real = token_of(reg, "repository:alice/app:pull")["token"]
    header, claims = jwt_parts(real)
    kid = {"kid": header["kid"]}
    now = int(time.time())
    if how == "alg-none":
        claims["access"][0]["name"] = "bob/secret"
        return unsigned({"alg": "none", "typ": "JWT"}, claims), "bob/secret"
    if how == "alg-none-same-claims":
        return unsigned({"alg": "none", "typ": "JWT"}, claims), "alice/app"
    if how == "other-key":
        other = ec.generate_private_key(ec.SECP256R1())
        return jwt.encode(claims, other, algorithm="ES256", headers=kid), "alice/app"
    if how == "hs256-with-public-key":
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT", **kid}).encode())
        body = b64(json.dumps(claims).encode())
        mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64(mac)}", "alice/app"
    if how == "expired":
        claims.update(iat=now - 900, nbf=now - 901, exp=now - 600)
        return jwt.encode(claims, key, algorithm="ES256", headers=kid), "alice/app"
    if how == "not-yet-valid":
        claims.update(nbf=now + 600, exp=now + 900)
        return jwt.encode(claims, key, algorithm="ES256", headers=kid), "alice/app"
    if how == "wrong-audience":
        claims["aud"] = "some-other-registry"
        return jwt.encode(claims, key, algorithm="ES256", headers=kid), "alice/app"
    if how == "wrong-issuer":
        claims["iss"] = "evil-issuer"
        return jwt.encode(claims, key, algorithm="ES256", headers=kid), "alice/app"
    if how == "no-expiry":
        del claims["exp"]
        return jwt.encode(claims, key, algorithm="ES256", headers=kid), "alice/app"
    if how == "not-an-access-token":
        del claims["dockyard_kind"]
        return jwt.encode(claims, key, algorithm="ES256", headers=kid), "alice/app"
    if how == "scope-escalation":
        # Edit the payload, keep the original signature.
        claims["access"] = [
            {"type": "repository", "name": "alice/app", "actions": ["pull", "push", "delete"]},
            {"type": "repository", "name": "bob/secret", "actions": ["pull"]},
        ]
        head, _, signature = real.split(".")
        return f"{head}.{b64(json.dumps(claims).encode())}.{signature}", "bob/secret"
    if how == "refresh-token-as-access-token":
        refresh = token_of(reg, "repository:alice/app:pull", offline_token="true")
        return refresh["refresh_token"], "alice/app"
    if how == "garbage":
        return "not-a-jwt", "alice/app"
    raise AssertionError(how)


TAMPERING = [
    "alg-none",
    "alg-none-same-claims",
    "other-key",
    "hs256-with-public-key",
    "expired",
    "not-yet-valid",
    "wrong-audience",
    "wrong-issuer",
    "no-expiry",
    "not-an-access-token",
    "scope-escalation",
    "refresh-token-as-access-token",
    "garbage",
]


@pytest.mark.parametrize("how", TAMPERING)
def test_tampered_token_is_refused(
    reg: AuthRegistry, signing_key: ec.EllipticCurvePrivateKey, how: str
) -> None:
    token, repo = tampered(reg, signing_key, how)
    assert_invalid_token(reg, pull(reg, repo, token))
    with reg.client() as http:
        # Not for writes either, nor for the version check clients log in with.
        response = upload_blob(http, "alice/app", config_blob(), f"Bearer {token}")
        assert_invalid_token(reg, response)
        assert_invalid_token(reg, http.get("/v2/", headers={"Authorization": f"Bearer {token}"}))


def test_token_for_another_service_is_refused(reg: AuthRegistry) -> None:
    response = httpx.get(
        reg.realm,
        params={"service": "other-registry", "scope": "repository:alice/app:pull"},
        headers={"Authorization": ALICE},
    )
    assert response.status_code == 403, response.text
    assert code_of(response) == "DENIED"
    assert "token" not in response.json()


def test_wrong_password_gets_no_token(reg: AuthRegistry) -> None:
    response = reg.token_response("repository:alice/app:pull", basic("alice", "wrong"))
    assert response.status_code == 401
    assert code_of(response) == "UNAUTHORIZED"
    response = post_token(reg, grant_type="password", username="alice", password="wrong")
    assert response.status_code == 401
    assert code_of(response) == "UNAUTHORIZED"


# -- granted scope is the intersection ----------------------------------------------------


def test_granted_scope_is_the_intersection(reg: AuthRegistry) -> None:
    body = token_of(
        reg,
        [
            "repository:alice/app:pull,push,delete",
            "repository:bob/secret:pull",
            "repository:bob/public:pull,push",
            "repository:nobody/nothing:pull",
            "repository:not a name:pull",
        ],
    )
    assert body["scope"] == "repository:alice/app:delete,pull,push repository:bob/public:pull"
    _, claims = jwt_parts(body["token"])
    assert claims["access"] == [
        {"type": "repository", "name": "alice/app", "actions": ["delete", "pull", "push"]},
        {"type": "repository", "name": "bob/public", "actions": ["pull"]},
    ]
    token = body["token"]
    assert pull(reg, "bob/public", token).status_code == 200
    hidden = pull(reg, "bob/secret", token)
    assert hidden.status_code == 401
    assert hidden.headers["WWW-Authenticate"] == reg.challenge(
        "repository:bob/secret:pull", "insufficient_scope"
    )
    with reg.client() as http:
        denied = upload_blob(http, "bob/public", config_blob(), f"Bearer {token}")
    assert denied.status_code == 403
    assert code_of(denied) == "DENIED"


def test_scopes_merge_and_star_means_everything(reg: AuthRegistry) -> None:
    body = token_of(reg, ["repository:alice/app:pull", "repository:alice/app:push"])
    assert body["scope"] == "repository:alice/app:pull,push"
    body = token_of(reg, "repository:alice/app:pull repository:bob/public:pull")
    assert body["scope"] == "repository:alice/app:pull repository:bob/public:pull"
    assert (
        token_of(reg, "repository:alice/app:*")["scope"] == "repository:alice/app:delete,pull,push"
    )
    assert token_of(reg, "repository:bob/public:*")["scope"] == "repository:bob/public:pull"
    assert token_of(reg, "repository:bob/secret:*")["scope"] == ""


def test_access_token_scope_caps_the_grant(reg: AuthRegistry) -> None:
    secret = reg.create_token("alice", "capped-read", "read")
    body = token_of(reg, "repository:alice/app:pull,push,delete", basic("alice", secret))
    assert body["scope"] == "repository:alice/app:pull"
    # Usable with an empty user name, as some clients send; not with another account's.
    body = token_of(reg, "repository:alice/app:pull", basic("", secret))
    assert body["scope"] == "repository:alice/app:pull"
    refused = reg.token_response("repository:alice/app:pull", basic("bob", secret))
    assert refused.status_code == 401


def test_anonymous_token_covers_public_pulls_only(reg: AuthRegistry) -> None:
    body = token_of(
        reg,
        ["repository:bob/public:pull,push", "repository:bob/secret:pull"],
        auth=None,
        offline_token="true",
    )
    assert body["scope"] == "repository:bob/public:pull"
    assert "refresh_token" not in body
    assert pull(reg, "bob/public", body["token"]).status_code == 200


# -- refresh tokens -----------------------------------------------------------------------


def test_offline_token_returns_a_refresh_token(reg: AuthRegistry) -> None:
    body = token_of(reg, "repository:alice/app:pull", offline_token="true")
    refresh = body["refresh_token"]
    _, claims = jwt_parts(refresh)
    assert claims["sub"] == "alice"
    assert "access" not in claims
    assert "refresh_token" not in token_of(reg, "repository:alice/app:pull", offline_token="false")

    response = post_token(
        reg,
        grant_type="refresh_token",
        refresh_token=refresh,
        scope="repository:alice/app:pull,push",
    )
    assert response.status_code == 200, response.text
    renewed = response.json()
    assert renewed["scope"] == "repository:alice/app:pull,push"
    assert renewed["refresh_token"] == refresh
    assert pull(reg, "alice/app", renewed["access_token"]).status_code == 200


def test_password_grant(reg: AuthRegistry) -> None:
    response = post_token(
        reg,
        grant_type="password",
        username="alice",
        password=PASSWORDS["alice"],
        access_type="offline",
        scope="repository:alice/app:pull repository:bob/secret:pull",
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "repository:alice/app:pull"
    assert pull(reg, "alice/app", body["access_token"]).status_code == 200
    assert "refresh_token" in body
    online = post_token(
        reg,
        grant_type="password",
        username="alice",
        password=PASSWORDS["alice"],
        scope="repository:alice/app:pull",
    )
    assert online.status_code == 200
    assert "refresh_token" not in online.json()
    # Scopes in the query string count as well (docker sends them in the form).
    query = httpx.post(
        reg.realm,
        params={"scope": "repository:alice/app:push"},
        data={
            "grant_type": "password",
            "username": "alice",
            "password": PASSWORDS["alice"],
            "service": SERVICE,
        },
    )
    assert query.json()["scope"] == "repository:alice/app:push"


def test_unknown_grant_type(reg: AuthRegistry) -> None:
    response = post_token(reg, grant_type="client_credentials")
    assert response.status_code == 400
    assert code_of(response) == "UNSUPPORTED"


def test_access_token_is_not_a_refresh_token(reg: AuthRegistry) -> None:
    access = token_of(reg, "repository:alice/app:pull")["token"]
    response = post_token(
        reg, grant_type="refresh_token", refresh_token=access, scope="repository:alice/app:pull"
    )
    assert response.status_code == 401, response.text
    assert code_of(response) == "UNAUTHORIZED"
    assert "token" not in response.json()


def test_forged_refresh_token_is_refused(reg: AuthRegistry) -> None:
    refresh = token_of(reg, "repository:alice/app:pull", offline_token="true")["refresh_token"]
    _, claims = jwt_parts(refresh)
    claims["sub"] = "bob"
    head, _, signature = refresh.split(".")
    edited = f"{head}.{b64(json.dumps(claims).encode())}.{signature}"
    response = post_token(
        reg, grant_type="refresh_token", refresh_token=edited, scope="repository:bob/secret:pull"
    )
    assert response.status_code == 401


def test_refresh_token_stops_working_after_passwd(reg: AuthRegistry) -> None:
    refresh = token_of(
        reg, "repository:carol/x:pull", basic("carol", PASSWORDS["carol"]), offline_token="true"
    )["refresh_token"]
    ok = post_token(reg, grant_type="refresh_token", refresh_token=refresh)
    assert ok.status_code == 200, ok.text
    reg.admin("user", "passwd", "carol", "--password-stdin", input="carol-new-pw\n")
    response = post_token(reg, grant_type="refresh_token", refresh_token=refresh)
    assert response.status_code == 401, response.text
    assert code_of(response) == "UNAUTHORIZED"
    # The new password works.
    token_of(reg, "repository:carol/x:pull", basic("carol", "carol-new-pw"))


def test_old_password_stops_working_after_passwd(reg: AuthRegistry) -> None:
    """Even right after a successful login with it (a cached check must not outlive it)."""
    old = basic("dave", PASSWORDS["dave"])
    token_of(reg, "repository:dave/x:pull", old)
    with reg.client() as http:
        assert http.get("/v2/", headers={"Authorization": old}).status_code == 200
    reg.admin("user", "passwd", "dave", "--password-stdin", input="dave-new-pw\n")
    refused = reg.token_response("repository:dave/x:pull", old)
    assert refused.status_code == 401, refused.text
    with reg.client() as http:
        assert http.get("/v2/", headers={"Authorization": old}).status_code == 401


def test_refresh_token_stops_working_when_its_access_token_is_revoked(reg: AuthRegistry) -> None:
    secret = reg.create_token("erin", "laptop", "write")
    body = token_of(
        reg, "repository:erin/x:pull,push,delete", basic("erin", secret), offline_token="true"
    )
    assert body["scope"] == "repository:erin/x:pull,push"
    refresh = body["refresh_token"]
    # The refresh token keeps the access token's scope.
    renewed = post_token(
        reg,
        grant_type="refresh_token",
        refresh_token=refresh,
        scope="repository:erin/x:pull,push,delete",
    )
    assert renewed.status_code == 200, renewed.text
    assert renewed.json()["scope"] == "repository:erin/x:pull,push"
    reg.admin("token", "revoke", "laptop", "--user", "erin")
    response = post_token(reg, grant_type="refresh_token", refresh_token=refresh)
    assert response.status_code == 401, response.text
    assert code_of(response) == "UNAUTHORIZED"
    # The password refresh tokens of the same account are not affected.
    other = token_of(
        reg, "repository:erin/x:pull", basic("erin", PASSWORDS["erin"]), offline_token="true"
    )["refresh_token"]
    assert post_token(reg, grant_type="refresh_token", refresh_token=other).status_code == 200


def test_revoked_access_token_stops_working_at_the_next_token_request(reg: AuthRegistry) -> None:
    """The issue: "Revocation takes effect at the next token request" -- also right after a
    successful one."""
    secret = reg.create_token("alice", "short-lived", "read")
    credentials = basic("alice", secret)
    token_of(reg, "repository:alice/app:pull", credentials)
    reg.admin("token", "revoke", "short-lived", "--user", "alice")
    response = reg.token_response("repository:alice/app:pull", credentials)
    assert response.status_code == 401, response.text
    with reg.client() as http:
        direct = get_manifest(http, "alice/app", "v1", credentials)
    assert direct.status_code == 401, direct.text


def test_refresh_token_issued_in_the_second_of_a_password_change_is_refused(tmp_path: Path) -> None:
    """Tokens carry whole-second `iat`s: one issued in the same second as a password change
    cannot be told apart from one issued just before it, so it must be refused."""
    settings = load_settings(None, {"data_dir": tmp_path / "data"}, environ={})

    async def check() -> None:
        async with open_registry(settings, create=True) as registry:
            accounts = registry.accounts
            await accounts.create_user("zed", "first-pw")
            await accounts.set_password("zed", "second-pw")
            account = await accounts.store.get_account("zed")
            assert account is not None
            same_second = int(account.credentials_changed_at)
            assert await accounts.principal("zed", issued_at=same_second) is None
            assert await accounts.principal("zed", issued_at=same_second + 1) is not None

    asyncio.run(check())


# -- mounts do not open a door to hidden content ----------------------------------------------


def test_mount_from_a_hidden_repository_is_refused(reg: AuthRegistry) -> None:
    """alice knows the digest of a blob in bob/secret: mounting it (named source, or automatic
    mount) must not hand it over; the same from bob/public does."""
    with reg.client() as http:
        secret_blob = config_blob()
        assert upload_blob(http, "bob/secret", secret_blob, BOB).status_code == 201
        digest = sha256(secret_blob)
        for params in ({"mount": digest, "from": "bob/secret"}, {"mount": digest}):
            response = http.post(
                "/v2/alice/loot/blobs/uploads/", params=params, headers={"Authorization": ALICE}
            )
            assert response.status_code == 202, response.text  # an upload, not a mount
            assert (
                http.head(
                    f"/v2/alice/loot/blobs/{digest}", headers={"Authorization": ALICE}
                ).status_code
                == 404
            )
        public_blob = config_blob()
        assert upload_blob(http, "bob/public", public_blob, BOB).status_code == 201
        response = http.post(
            "/v2/alice/loot/blobs/uploads/",
            params={"mount": sha256(public_blob), "from": "bob/public"},
            headers={"Authorization": ALICE},
        )
        assert response.status_code == 201, response.text


def test_version_check_starts_the_login_flow(reg: AuthRegistry) -> None:
    with reg.client() as http:
        anonymous = http.get("/v2/")
        assert anonymous.status_code == 401
        assert code_of(anonymous) == "UNAUTHORIZED"
        assert anonymous.headers["WWW-Authenticate"] == reg.challenge()
        assert http.get("/v2/", headers={"Authorization": ALICE}).status_code == 200
        wrong = http.get("/v2/", headers={"Authorization": basic("alice", "nope")})
        assert wrong.status_code == 401
        assert wrong.headers["WWW-Authenticate"] == reg.challenge()
        for auth in (None, ALICE):  # an anonymous token is a session too
            token = token_of(reg, [], auth=auth)["token"]
            assert http.get("/v2/", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_no_secret_reaches_the_log(reg: AuthRegistry) -> None:
    """Last in this module: nothing the tests above sent or received as a secret (passwords,
    access-token secrets, JWTs) appears in the server's log."""
    log = reg.server.log()
    assert '"GET /token' in log and '"POST /token' in log  # the log is there, requests in it
    for password in PASSWORDS.values():
        assert password not in log
    assert "dyt_" not in log
    assert "eyJ" not in log  # the start of every JWT


def test_read_token_bearer_push_is_plainly_denied(start_auth_registry) -> None:
    """A bearer token obtained with a read-scoped access token is judged by that scope: a
    push is DENIED outright, never answered with "request a new token" (which cannot help)."""
    from tests.auth.helpers import basic, push_image

    reg = start_auth_registry()
    reg.add_user("reader-pat", "pw-reader-pat")
    with reg.client() as c:
        push_image(c, "reader-pat/app", "v1", auth=basic("reader-pat", "pw-reader-pat"))
    secret = reg.create_token("reader-pat", "ro", "read")
    bearer = reg.bearer("repository:reader-pat/app:pull,push", basic("reader-pat", secret))
    with reg.client() as c:
        resp = c.post("/v2/reader-pat/app/blobs/uploads/", headers={"Authorization": bearer})
    assert resp.status_code == 403
    assert resp.json()["errors"][0]["code"] == "DENIED"
    assert "request a new one" not in resp.text
    assert "insufficient_scope" not in resp.headers.get("WWW-Authenticate", "")


# The token must be used twice before it expires: one of 2 s ran out beside other tests
# (pytest-xdist on 2 cores) before its first pull was answered, and the test then ran alone,
# holding every other test back while it waited for the machine. One of 7 s leaves room for
# both pulls beside them, and still expires well before a caller would be forgotten
# (IDENTITY_CACHE_SECONDS after the first pull): an answer from memory past the token's end
# is still told from the refusal the test expects.
LIVES = 7


def test_a_remembered_bearer_token_still_ends_at_its_expiry(
    reg: AuthRegistry, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    """Callers behind bearer tokens are remembered for a few seconds, never past the token."""
    assert LIVES + 1.2 < IDENTITY_CACHE_SECONDS
    header, claims = jwt_parts(token_of(reg, "repository:alice/app:pull")["token"])
    now = int(time.time())
    claims.update(jti="short-lived", iat=now, nbf=now - 1, exp=now + LIVES)
    short = jwt.encode(claims, signing_key, algorithm="ES256", headers={"kid": header["kid"]})
    assert pull(reg, "alice/app", short).status_code == 200
    assert pull(reg, "alice/app", short).status_code == 200  # now from memory
    time.sleep(max(0.0, now + LIVES + 1.2 - time.time()))
    assert_invalid_token(reg, pull(reg, "alice/app", short))
