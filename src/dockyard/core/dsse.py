"""DSSE, the Dead Simple Signing Envelope (`application/vnd.dsse.envelope.v1+json`), as cosign
writes it for attestations: `{"payloadType", "payload", "signatures": [{"keyid", "sig"}]}`,
payload and signatures in standard base64.

What is signed is not the payload alone but its pre-authentication encoding (PAE), which binds
the payload type too: `DSSEv1 <len(type)> <type> <len(payload)> <payload>`. Keys follow
cosign's rules (`dockyard.core.keys`): ECDSA DER or RSA PKCS#1 v1.5, SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.core import keys
from dockyard.core.signature_failure import Failure, SignatureRefused

ENVELOPE_TYPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
# An attestation is a provenance record or an SBOM: megabytes at most.
MAX_ENVELOPE_BYTES = 16 * 1024 * 1024
MAX_SIGNATURES = 16


def pae(payload_type: str, payload: bytes) -> bytes:
    """The bytes a DSSE signature covers."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def seal(private_key: keys.PrivateKey, payload_type: str, payload: bytes) -> bytes:
    """A DSSE envelope of `payload` with one signature by `private_key`."""
    signature = keys.sign(private_key, pae(payload_type, payload))
    document = {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": "", "sig": base64.b64encode(signature).decode()}],
    }
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Opened:
    """An envelope one of the trusted keys signed: by which, and what it holds."""

    key_name: str
    payload_type: str
    payload: bytes


def _malformed(message: str) -> SignatureRefused:
    return SignatureRefused(Failure.MALFORMED, message)


def open_envelope(data: bytes, trusted: Sequence[tuple[str, keys.PublicKey]]) -> Opened:
    """The payload of an envelope that one of `trusted` (name, key) signed; SignatureRefused
    when it is not an envelope, or no signature in it verifies with any of the keys."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise _malformed(f"the DSSE envelope is larger than {MAX_ENVELOPE_BYTES} bytes")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise _malformed("the DSSE envelope is not JSON") from None
    if not isinstance(document, dict):
        raise _malformed("the DSSE envelope is not a JSON object")
    payload_type, encoded, signatures = (
        document.get("payloadType"),
        document.get("payload"),
        document.get("signatures"),
    )
    if not isinstance(payload_type, str) or not isinstance(encoded, str):
        raise _malformed("the DSSE envelope has no payloadType and payload")
    if not isinstance(signatures, list) or not signatures:
        raise _malformed("the DSSE envelope holds no signature")
    try:
        payload = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed("the DSSE payload is not base64") from None
    signed = pae(payload_type, payload)
    for entry in signatures[:MAX_SIGNATURES]:
        text = entry.get("sig") if isinstance(entry, dict) else None
        try:
            signature = base64.b64decode(str(text), validate=True)
        except (binascii.Error, ValueError):
            continue
        for name, key in trusted:
            if keys.verify(key, signature, signed):
                return Opened(name, payload_type, payload)
    raise SignatureRefused(
        Failure.BAD_SIGNATURE,
        "no signature in the DSSE envelope verifies with the given keys: the statement was "
        "changed after signing, or another key signed it",
    )
