"""The token endpoint's own ES256 signer makes JWS that PyJWT (and so any JWS library) reads
exactly as it reads PyJWT's own, and that nothing else verifies."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.auth.jws import ES256Signer, b64url
from dockyard.auth.tokens import TokenAuthority

CLAIMS = {
    "iss": "dockyard",
    "sub": "tokener",
    "aud": "dockyard",
    "iat": 1_796_000_000,
    "nbf": 1_795_999_999,
    "exp": 4_102_444_800,
    "jti": "0123456789abcdef0123456789abcdef",
    "access": [{"type": "repository", "name": "a/b", "actions": ["pull", "push"]}],
    "note": 'ünïcode and "quotes"',
    "dockyard_stamp": [1796000000.125, 0.0],
}


def _part(text: str) -> dict[str, object]:
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    return decoded


def test_signed_tokens_read_as_pyjwt_reads_its_own() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = ES256Signer(key, {"kid": "ABCD:EFGH", "typ": "JWT"})
    ours = signer.sign(CLAIMS)
    theirs = jwt.encode(CLAIMS, key, algorithm="ES256", headers={"kid": "ABCD:EFGH", "typ": "JWT"})
    for token in (ours, theirs):
        decoded = jwt.decode(token, key.public_key(), algorithms=["ES256"], audience="dockyard")
        assert decoded == CLAIMS
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "ES256", "kid": "ABCD:EFGH", "typ": "JWT"}
    # Same header and claims text as PyJWT writes; the signature is r || s, 64 bytes.
    assert ours.split(".")[:2] == theirs.split(".")[:2]
    assert _part(ours.split(".")[1]) == CLAIMS
    signature = ours.split(".")[2]
    assert "=" not in ours and len(base64.urlsafe_b64decode(signature + "==")) == 64
    # ECDSA is randomised: two signatures of the same claims differ, both verify.
    assert signer.sign(CLAIMS) != ours


def test_a_changed_byte_or_another_key_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    token = ES256Signer(key, {"kid": "k"}).sign(CLAIMS)
    header, payload, signature = token.split(".")
    forged = b64url(json.dumps({**CLAIMS, "sub": "admin"}).encode()).decode()
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    for bad, verifier in (
        (f"{header}.{forged}.{signature}", key.public_key()),
        (f"{header}.{payload}.{flipped}", key.public_key()),
        (token, other),
    ):
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(bad, verifier, algorithms=["ES256"], audience="dockyard")


def test_only_p256_keys_sign_es256() -> None:
    with pytest.raises(ValueError, match="P-256"):
        ES256Signer(ec.generate_private_key(ec.SECP384R1()), {})


def test_the_authority_s_tokens_verify_with_pyjwt_and_with_itself() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    authority = TokenAuthority(
        key, issuer="dockyard", service="registry.test", access_ttl=300, refresh_ttl=3600
    )
    token = authority.issue_access("alice", [], credential="0123456789abcdef", stamp=(1.5, 0.0))
    decoded = jwt.decode(
        token, key.public_key(), algorithms=["ES256"], audience="registry.test", issuer="dockyard"
    )
    assert decoded["sub"] == "alice" and decoded["exp"] - decoded["iat"] == 300
    assert len(decoded["jti"]) == 32
    assert jwt.get_unverified_header(token)["kid"] == authority.kid
    claims = authority.verify(token)
    assert claims.subject == "alice" and claims.stamp == (1.5, 0.0)
    assert claims.credential == "0123456789abcdef"
