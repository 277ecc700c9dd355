"""Password hashing with bcrypt; every check costs the same whether or not the account exists."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

import bcrypt

ROUNDS = 10


@functools.cache
def _dummy_hash() -> str:
    """Checked against when an account is unknown, so a miss takes as long as a hit."""
    return bcrypt.hashpw(b"dockyard-dummy-password", bcrypt.gensalt(ROUNDS)).decode()


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("the password is empty")
    encoded = password.encode()
    if len(encoded) > 72:  # bcrypt's limit: pre-hash longer secrets so every byte counts
        encoded = hashlib.sha256(encoded).hexdigest().encode()
    return bcrypt.hashpw(encoded, bcrypt.gensalt(ROUNDS)).decode()


def verify_password(password: str, hashed: str | None) -> bool:
    encoded = password.encode()
    if len(encoded) > 72:
        encoded = hashlib.sha256(encoded).hexdigest().encode()
    target = hashed or _dummy_hash()
    try:
        ok = bcrypt.checkpw(encoded, target.encode())
    except ValueError:
        return False
    return ok and hashed is not None


def generate_password() -> str:
    return secrets.token_urlsafe(18)


def hash_secret(secret: str) -> str:
    """Access-token secrets are random and long: one SHA-256 is enough and fast."""
    return hashlib.sha256(secret.encode()).hexdigest()


def secrets_match(secret: str, hashed: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), hashed)
