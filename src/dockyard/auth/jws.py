"""Compact JWS with ES256 (RFC 7515, RFC 7518 section 3.4): how the token endpoint signs.

Every token the endpoint issues has the same header (the key's id never changes while the
process runs), so it is encoded once here; the claims are encoded and signed per token, and
ECDSA's DER signature is turned into the fixed-width r || s that JWS requires. Tokens are still
read (and verified) with PyJWT, as any other JWS library reads them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ALGORITHM = "ES256"
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_COORDINATE_BYTES = 32  # P-256
_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def b64url(data: bytes) -> bytes:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=")


class ES256Signer:
    """Signs claims as compact JWS with a P-256 key under a fixed protected header."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, headers: dict[str, str]) -> None:
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("ES256 signs with a P-256 key")
        self.key = key
        header = {"alg": ALGORITHM, **headers}
        self._prefix = b64url(_compact_json(dict(sorted(header.items()))).encode()) + b"."

    def sign(self, claims: dict[str, Any]) -> str:
        signing_input = self._prefix + b64url(_compact_json(claims).encode())
        r, s = decode_dss_signature(self.key.sign(signing_input, _ECDSA_SHA256))
        signature = r.to_bytes(_COORDINATE_BYTES, "big") + s.to_bytes(_COORDINATE_BYTES, "big")
        return (signing_input + b"." + b64url(signature)).decode("ascii")
