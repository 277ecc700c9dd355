"""How a webhook request is signed, so its receiver knows the registry sent it, unchanged and
lately: `Dockyard-Signature: sha256=HEX`, the HMAC-SHA256 under the webhook's secret of the
`Dockyard-Timestamp` header's value (Unix seconds), a full stop, and the body's bytes. The
timestamp is signed so that a receiver can refuse a request recorded and replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "Dockyard-Signature"
TIMESTAMP_HEADER = "Dockyard-Timestamp"
EVENT_HEADER = "Dockyard-Event-Id"


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signed_headers(secret: str, timestamp: int, body: bytes, first_event: str) -> dict[str, str]:
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        EVENT_HEADER: first_event,
    }
