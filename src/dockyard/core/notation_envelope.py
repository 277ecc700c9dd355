"""Notation's two signature envelopes read into one shape: the JWS flattened JSON serialisation
(`application/jose+json`) and the COSE_Sign1 message (`application/cose`, CBOR through cbor2).

Reading checks only the form. What the headers must say, and whether the signature holds, is
`dockyard.core.notation`'s job; `signing_input` is the exact byte string the signer signed.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from dockyard.core.signature_failure import Failure, SignatureRefused

JWS = "application/jose+json"
COSE = "application/cose"
ENVELOPE_TYPES = (JWS, COSE)
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024

SIGNING_SCHEME = "io.cncf.notary.signingScheme"
SIGNING_TIME = "io.cncf.notary.signingTime"
AUTHENTIC_SIGNING_TIME = "io.cncf.notary.authenticSigningTime"
EXPIRY = "io.cncf.notary.expiry"

# COSE algorithm numbers (RFC 9053, RFC 8230) by their JOSE names.
COSE_ALGORITHMS = {
    -37: "PS256",
    -38: "PS384",
    -39: "PS512",
    -7: "ES256",
    -35: "ES384",
    -36: "ES512",
}
COSE_ALG, COSE_CRIT, COSE_CONTENT_TYPE, COSE_X5CHAIN = 1, 2, 3, 33
COSE_SIGN1_TAG = 18


@dataclass(frozen=True)
class Envelope:
    """A signature envelope, whichever its encoding."""

    media_type: str
    algorithm: str  # JOSE name: PS256 … ES512
    content_type: str | None
    critical: tuple[str, ...]
    # The protected header's other names (notation's `io.cncf.notary.*`) and their values.
    protected: dict[str, Any]
    payload: bytes
    signing_input: bytes
    signature: bytes
    chain: tuple[x509.Certificate, ...]


def refused(message: str) -> SignatureRefused:
    return SignatureRefused(Failure.MALFORMED, message)


def read_envelope(media_type: str, data: bytes) -> Envelope:
    if len(data) > MAX_ENVELOPE_BYTES:
        raise refused(f"the signature envelope is larger than {MAX_ENVELOPE_BYTES} bytes")
    if media_type == JWS:
        return _read_jws(data)
    if media_type == COSE:
        return _read_cose(data)
    raise SignatureRefused(
        Failure.UNSUPPORTED,
        f"signature envelope of type {media_type!r}: notation's are {JWS} and {COSE}",
    )


def _b64url(text: object, what: str) -> bytes:
    if not isinstance(text, str) or "=" in text:
        raise refused(f"the JWS {what} is not unpadded base64url text")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise refused(f"the JWS {what} is not base64url") from None


def _certificate(der: object) -> x509.Certificate:
    if not isinstance(der, bytes):
        raise refused("a certificate of the chain is not DER bytes")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise refused("a certificate of the chain is not a DER X.509 certificate") from None


def _read_jws(data: bytes) -> Envelope:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise refused("the JWS envelope is not JSON") from None
    if not isinstance(document, dict):
        raise refused("the JWS envelope is not a JSON object")
    if "signatures" in document:
        raise refused("a JWS with several signatures: notation writes the flattened form")
    protected_text, payload_text = document.get("protected"), document.get("payload")
    protected_bytes = _b64url(protected_text, "protected header")
    payload = _b64url(payload_text, "payload")
    signature = _b64url(document.get("signature"), "signature")
    try:
        protected = json.loads(protected_bytes)
    except (ValueError, UnicodeDecodeError):
        raise refused("the JWS protected header is not JSON") from None
    if not isinstance(protected, dict):
        raise refused("the JWS protected header is not a JSON object")
    header = document.get("header") or {}
    chain_text = header.get("x5c") if isinstance(header, dict) else None
    if not isinstance(chain_text, list):
        raise refused("the JWS header has no certificate chain (x5c)")
    chain = []
    for text in chain_text:
        try:
            chain.append(_certificate(base64.b64decode(str(text), validate=True)))
        except (binascii.Error, ValueError):
            raise refused("a certificate in x5c is not base64") from None
    algorithm = protected.pop("alg", None)
    content_type = protected.pop("cty", None)
    critical = protected.pop("crit", None)
    if not isinstance(algorithm, str):
        raise refused("the JWS protected header names no algorithm (alg)")
    if not isinstance(critical, list) or not all(isinstance(name, str) for name in critical):
        raise refused("the JWS protected header has no list of critical headers (crit)")
    for name in (SIGNING_TIME, AUTHENTIC_SIGNING_TIME, EXPIRY):
        if name in protected:
            protected[name] = _rfc3339(protected[name], name)
    return Envelope(
        media_type=JWS,
        algorithm=algorithm,
        content_type=content_type if isinstance(content_type, str) else None,
        critical=tuple(critical),
        protected=protected,
        payload=payload,
        # JWS signs the two base64url texts exactly as they stand in the envelope.
        signing_input=f"{protected_text}.{payload_text}".encode("ascii"),
        signature=signature,
        chain=tuple(chain),
    )


def _rfc3339(value: object, name: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise refused(f"{name} is not an RFC 3339 time: {str(value)[:40]!r}") from None
    if when.tzinfo is None:
        raise refused(f"{name} has no time zone: {str(value)[:40]!r}")
    return when


def _read_cose(data: bytes) -> Envelope:
    import cbor2  # only COSE envelopes need CBOR

    try:
        message = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError):
        raise refused("the COSE envelope is not CBOR") from None
    if not isinstance(message, cbor2.CBORTag) or message.tag != COSE_SIGN1_TAG:
        raise refused("the COSE envelope is not a tagged COSE_Sign1 message (tag 18)")
    parts = message.value
    if not isinstance(parts, list | tuple) or len(parts) != 4:
        raise refused("the COSE_Sign1 message is not an array of four items")
    protected_bytes, unprotected, payload, signature = parts
    if not isinstance(protected_bytes, bytes) or not isinstance(signature, bytes):
        raise refused("the COSE_Sign1 protected header or signature is not a byte string")
    if not isinstance(payload, bytes):
        raise refused("the COSE_Sign1 payload is detached or not a byte string")
    try:
        protected = dict(cbor2.loads(protected_bytes)) if protected_bytes else {}
    except (cbor2.CBORDecodeError, ValueError, TypeError, OverflowError, RecursionError):
        raise refused("the COSE protected header is not a CBOR map") from None
    if not isinstance(unprotected, Mapping):
        raise refused("the COSE unprotected header is not a map")
    chain_items = unprotected.get(COSE_X5CHAIN)
    if isinstance(chain_items, bytes):
        chain_items = [chain_items]
    if not isinstance(chain_items, list | tuple):
        raise refused("the COSE unprotected header has no certificate chain (x5chain)")
    chain = [_certificate(item) for item in chain_items]
    number = protected.pop(COSE_ALG, None)
    algorithm = COSE_ALGORITHMS.get(number) if isinstance(number, int) else None
    if algorithm is None:
        raise SignatureRefused(
            Failure.UNSUPPORTED,
            f"COSE algorithm {number!r}: notation uses PS256/384/512 and ES256/384/512",
        )
    content_type = protected.pop(COSE_CONTENT_TYPE, None)
    critical = protected.pop(COSE_CRIT, None)
    if not isinstance(critical, list | tuple) or not all(isinstance(n, str) for n in critical):
        raise refused("the COSE protected header has no list of critical header names (crit)")
    if any(not isinstance(label, str) for label in protected):
        labels = sorted(str(label) for label in protected if not isinstance(label, str))
        raise SignatureRefused(
            Failure.UNSUPPORTED, f"COSE protected header labels not understood: {labels}"
        )
    for name in (SIGNING_TIME, AUTHENTIC_SIGNING_TIME, EXPIRY):
        if name in protected and not isinstance(protected[name], dt.datetime):
            raise refused(f"{name} is not a CBOR time (tag 1)")
    # COSE signs the Sig_structure: the protected header's bytes as received, no external data.
    signing_input = cbor2.dumps(["Signature1", protected_bytes, b"", payload])
    return Envelope(
        media_type=COSE,
        algorithm=algorithm,
        content_type=content_type if isinstance(content_type, str) else None,
        critical=tuple(critical),
        protected=protected,
        payload=payload,
        signing_input=signing_input,
        signature=signature,
        chain=tuple(chain),
    )
