"""The browser session: a signed cookie, and the CSRF token bound to it.

The cookie carries the account's name, the account's credentials stamp when the session
began, a random session id and when it was issued, signed with HMAC-SHA256 under a secret
every replica shares (kept by the metadata store, in the data folder for SQLite). Nothing
about a session is stored, except its end: signing out marks the session id as ended in the
shared counters for the rest of its lifetime. A password change moves the account's stamp,
which ends every session begun before it.

Visitors who are not signed in get a session too (with no account), so that the sign-in form
and any other form carry a CSRF token bound to something the visitor's browser alone holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

COOKIE = "dockyard_session"
# How long a session lasts, signed in or not.
SESSION_SECONDS = 12 * 3600
SECRET_NAME = "web-session-key"
ENDED_PREFIX = "web-session-ended:"


def new_secret() -> str:
    return secrets.token_urlsafe(48)


@dataclass(frozen=True, slots=True)
class Session:
    account: str  # "" when nobody is signed in
    stamp: float  # the account's credentials_changed_at when it signed in (0 for nobody)
    sid: str
    issued_at: float

    @property
    def expires_at(self) -> float:
        return self.issued_at + SESSION_SECONDS


def start(account: str = "", stamp: float = 0.0, now: float | None = None) -> Session:
    """A new session: a fresh id, so that a session id seen before signing in (by whoever
    planted a cookie) is worth nothing after."""
    return Session(account, stamp, secrets.token_urlsafe(18), time.time() if now is None else now)


def _mac(key: bytes, purpose: bytes, payload: bytes) -> str:
    digest = hmac.new(key, purpose + b"\0" + payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def encode(session: Session, key: bytes) -> str:
    payload = json.dumps(
        [session.account, session.stamp, session.sid, session.issued_at], separators=(",", ":")
    ).encode()
    body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"{body}.{_mac(key, b'session', body.encode())}"


def decode(value: str, key: bytes, now: float | None = None) -> Session | None:
    """The session a cookie carries, if its signature holds and it has not expired."""
    body, _, mac = value.partition(".")
    if (
        not body
        or len(value) > 1024
        or not hmac.compare_digest(mac.encode(), _mac(key, b"session", body.encode()).encode())
    ):
        return None
    try:
        account, stamp, sid, issued_at = json.loads(
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        )
    except (ValueError, TypeError):
        return None
    if not (
        isinstance(account, str)
        and isinstance(stamp, int | float)
        and isinstance(sid, str)
        and isinstance(issued_at, int | float)
    ):
        return None
    session = Session(account, float(stamp), sid, float(issued_at))
    current = time.time() if now is None else now
    if not session.issued_at - 60 <= current < session.expires_at:
        return None
    return session


def csrf_token(session: Session, key: bytes) -> str:
    """The token a form of this session carries: bound to the session id, so a token read
    from another session (or from before signing in) is refused."""
    return _mac(key, b"csrf", session.sid.encode())
