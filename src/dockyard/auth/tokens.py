"""Signed bearer tokens (JWT, ES256) as the Docker token spec describes them.

Access tokens carry the granted `access` list and live minutes; refresh tokens (offline tokens)
carry only who they were issued to and live days. Each kind is refused where the other is
expected. The signing key is made once, kept in the data folder, and named by a `kid` in the
libtrust form CNCF Distribution checks, so Distribution can trust our tokens too.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.auth.jws import ALGORITHM, ES256Signer
from dockyard.auth.scopes import Scope
from dockyard.core.bounded_cache import BoundedCache

ACCESS, REFRESH = "access", "refresh"
KEY_FILE = "token-signing-key.pem"
# Tokens verified lately, so a client's next request skips the signature check.
VERIFIED_TOKENS = 10_000


class InvalidToken(Exception):
    """The token is forged, expired, for another service, or of the wrong kind."""


def new_key_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def key_from_pem(pem: str | bytes) -> ec.EllipticCurvePrivateKey:
    loaded = serialization.load_pem_private_key(
        pem.encode() if isinstance(pem, str) else pem, password=None
    )
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError("the token signing key is not an EC private key")
    return loaded


def load_or_create_key(folder: Path) -> ec.EllipticCurvePrivateKey:
    path = folder / KEY_FILE
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} does not hold an EC private key")
    return loaded


def libtrust_key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str  # account name; "" for anonymous
    kind: str
    access: tuple[Scope, ...]
    issued_at: float
    expires_at: float
    credential: str | None  # the access-token id a refresh token was obtained with
    # The subject account's state it was minted for (see AccountService.principal); None in
    # tokens minted before there were stamps.
    stamp: tuple[float, ...] | None = None


class TokenAuthority:
    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        issuer: str,
        service: str,
        access_ttl: int,
        refresh_ttl: int,
    ) -> None:
        self.key = key
        self.public_key = key.public_key()
        self.kid = libtrust_key_id(self.public_key)
        self._signer = ES256Signer(key, {"kid": self.kid, "typ": "JWT"})
        self.issuer = issuer
        self.service = service
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._verified: BoundedCache[str, TokenClaims] = BoundedCache(VERIFIED_TOKENS)

    def public_pem(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _sign(self, claims: dict[str, Any]) -> str:
        return self._signer.sign(claims)

    def _base(self, subject: str, kind: str, ttl: int, now: float) -> dict[str, Any]:
        return {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "iat": int(now),
            "nbf": int(now) - 1,
            "exp": int(now) + ttl,
            "jti": secrets.token_hex(16),
            "dockyard_kind": kind,
        }

    def issue_access(
        self,
        subject: str,
        access: list[Scope],
        now: float | None = None,
        credential: str | None = None,
        stamp: tuple[float, ...] | None = None,
    ) -> str:
        """`credential`: the access token (`dyt_…`) the caller logged in with, so that what the
        bearer token may do is judged by that token's scope, never by its owner's rights.
        `stamp`: the subject account's state, which must not have moved when it is used."""
        claims = self._base(subject, ACCESS, self.access_ttl, now or time.time())
        claims["access"] = [scope.claim() for scope in access]
        if credential:
            claims["dockyard_credential"] = credential
        if stamp is not None:
            claims["dockyard_stamp"] = list(stamp)
        return self._sign(claims)

    def issue_refresh(
        self,
        subject: str,
        credential: str | None,
        now: float | None = None,
        stamp: tuple[float, ...] | None = None,
    ) -> str:
        claims = self._base(subject, REFRESH, self.refresh_ttl, now or time.time())
        if credential:
            claims["dockyard_credential"] = credential
        if stamp is not None:
            claims["dockyard_stamp"] = list(stamp)
        return self._sign(claims)

    def verify(self, token: str, kind: str = ACCESS) -> TokenClaims:
        cached = self._verified.get(token)
        if cached is not None and cached.kind == kind and cached.expires_at > time.time():
            return cached
        try:
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=[ALGORITHM],
                audience=self.service,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "aud", "iss", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        if claims.get("dockyard_kind") != kind:
            raise InvalidToken(f"not an {kind} token")
        access = []
        for entry in claims.get("access") or []:
            if isinstance(entry, dict) and isinstance(entry.get("actions"), list):
                access.append(
                    Scope(
                        str(entry.get("type")),
                        str(entry.get("name")),
                        frozenset(str(a) for a in entry["actions"]),
                    )
                )
        stamp = claims.get("dockyard_stamp")
        verified = TokenClaims(
            str(claims["sub"]),
            kind,
            tuple(access),
            float(claims["iat"]),
            float(claims["exp"]),
            claims.get("dockyard_credential"),
            tuple(float(v) for v in stamp) if isinstance(stamp, list) and stamp else None,
        )
        self._verified.put(token, verified)
        return verified
