"""Verifying a notation signature (Notary Project, `application/vnd.cncf.notary.signature`)
against a trust store of X.509 roots, without a network: notation's `strict` level for the
`notary.x509` signing scheme, less revocation (no CRL or OCSP is fetched).

In order, each with its own failure kind (`dockyard.core.signature_failure`):
1. the envelope's form and protected header: the algorithm, `cty` (notation's payload type),
   the signing scheme and the critical headers, every one of which must be understood;
2. integrity: the signature over the exact signed bytes, with the signing certificate's key,
   in the algorithm the key's type and size call for;
3. authenticity: the chain up to a trust-store root (`dockyard.core.cert_chain`), valid at the
   signing time and, since that time is the signer's own claim, also now;
4. the signature's own expiry, when it has one;
5. the payload's `targetArtifact` equal to the manifest being verified (digest, size, type).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from dockyard.core.cert_chain import check_chain, name_of
from dockyard.core.manifest import Descriptor
from dockyard.core.notation_envelope import (
    AUTHENTIC_SIGNING_TIME,
    EXPIRY,
    SIGNING_SCHEME,
    SIGNING_TIME,
    Envelope,
    read_envelope,
)
from dockyard.core.signature_failure import Failure, SignatureRefused

ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
X509 = "notary.x509"
SIGNING_AUTHORITY = "notary.x509.signingAuthority"
# Protected headers notation defines; a critical one outside this set is not understood.
UNDERSTOOD = frozenset({SIGNING_SCHEME, SIGNING_TIME, EXPIRY})

# The algorithm notation pairs with each key: RSA by modulus size, ECDSA by curve.
RSA_ALGORITHMS = {2048: "PS256", 3072: "PS384", 4096: "PS512"}
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}


@dataclass(frozen=True)
class NotationSignature:
    """A signature that held: who signed, when, under which root."""

    envelope_type: str
    signer: str  # the signing certificate's subject
    root: str  # the trust-store certificate the chain ends at
    signing_time: dt.datetime
    target: Descriptor


def verify_notation(
    media_type: str,
    envelope: bytes,
    subject: Descriptor,
    roots: Sequence[x509.Certificate],
    now: dt.datetime | None = None,
) -> NotationSignature:
    """Check one envelope (the signature manifest's layer) as a signature of `subject`."""
    now = now or dt.datetime.now(dt.UTC)
    read = read_envelope(media_type, envelope)
    signing_time = _check_header(read)
    _check_signature(read)
    root = check_chain(read.chain, roots, [("signing time", signing_time), ("verification", now)])
    expiry = read.protected.get(EXPIRY)
    if isinstance(expiry, dt.datetime) and now > expiry:
        raise SignatureRefused(
            Failure.SIGNATURE_EXPIRED,
            f"the signature expired on {expiry.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC",
        )
    target = _check_target(read.payload, subject)
    return NotationSignature(
        envelope_type=read.media_type,
        signer=name_of(read.chain[0]),
        root=name_of(root),
        signing_time=signing_time,
        target=target,
    )


def _check_header(read: Envelope) -> dt.datetime:
    if read.content_type != PAYLOAD_TYPE:
        raise SignatureRefused(
            Failure.UNSUPPORTED,
            f"the signed content is of type {read.content_type!r}, not notation's {PAYLOAD_TYPE}",
        )
    scheme = read.protected.get(SIGNING_SCHEME)
    if scheme == SIGNING_AUTHORITY:
        raise SignatureRefused(
            Failure.UNSUPPORTED,
            f"signing scheme {SIGNING_AUTHORITY} (a signing authority's timestamp) is not "
            f"supported; only {X509}",
        )
    if scheme != X509:
        raise SignatureRefused(
            Failure.UNSUPPORTED, f"signing scheme {scheme!r}: notation's is {X509}"
        )
    if SIGNING_SCHEME not in read.critical:
        raise SignatureRefused(
            Failure.MALFORMED, f"{SIGNING_SCHEME} is not among the critical headers"
        )
    if EXPIRY in read.protected and EXPIRY not in read.critical:
        raise SignatureRefused(Failure.MALFORMED, f"{EXPIRY} is not among the critical headers")
    for name in read.critical:
        if name not in UNDERSTOOD:
            raise SignatureRefused(
                Failure.UNSUPPORTED, f"critical header {name!r} is not understood"
            )
        if name not in read.protected:
            raise SignatureRefused(
                Failure.MALFORMED, f"critical header {name!r} is not in the protected header"
            )
    if AUTHENTIC_SIGNING_TIME in read.protected:
        raise SignatureRefused(
            Failure.UNSUPPORTED, f"{AUTHENTIC_SIGNING_TIME} belongs to another signing scheme"
        )
    signing_time = read.protected.get(SIGNING_TIME)
    if not isinstance(signing_time, dt.datetime):
        raise SignatureRefused(Failure.MALFORMED, f"the protected header has no {SIGNING_TIME}")
    return signing_time


def _check_signature(read: Envelope) -> None:
    key = read.chain[0].public_key() if read.chain else None
    if key is None:
        raise SignatureRefused(Failure.MALFORMED, "the envelope carries no certificate chain")
    if isinstance(key, rsa.RSAPublicKey):
        expected = RSA_ALGORITHMS.get(key.key_size)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        expected = EC_ALGORITHMS.get(key.curve.name)
    else:
        expected = None
    if expected is None:
        raise SignatureRefused(
            Failure.UNSUPPORTED,
            f"the signing certificate's key ({type(key).__name__}) is not one notation signs "
            "with (RSA 2048/3072/4096, ECDSA P-256/P-384/P-521)",
        )
    if read.algorithm != expected:
        raise SignatureRefused(
            Failure.UNSUPPORTED,
            f"algorithm {read.algorithm} does not go with the signing certificate's key "
            f"(which calls for {expected})",
        )
    digest = HASHES[expected[2:]]()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                read.signature,
                read.signing_input,
                padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size),
                digest,
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            half = (key.curve.key_size + 7) // 8
            if len(read.signature) != 2 * half:
                raise InvalidSignature
            r = int.from_bytes(read.signature[:half], "big")
            s = int.from_bytes(read.signature[half:], "big")
            key.verify(encode_dss_signature(r, s), read.signing_input, ec.ECDSA(digest))
    except InvalidSignature:
        raise SignatureRefused(
            Failure.BAD_SIGNATURE,
            f"the signature does not verify with the key of {name_of(read.chain[0])}: the "
            "payload or protected header was changed after signing, or another key signed it",
        ) from None


def _check_target(payload: bytes, subject: Descriptor) -> Descriptor:
    try:
        document = json.loads(payload)
        target = document["targetArtifact"]
        found = Descriptor(str(target["mediaType"]), str(target["digest"]), int(target["size"]))
    except (ValueError, UnicodeDecodeError, KeyError, TypeError):
        raise SignatureRefused(
            Failure.MALFORMED, "the signed payload has no targetArtifact with digest, size and type"
        ) from None
    if found.digest != subject.digest:
        raise SignatureRefused(
            Failure.WRONG_ARTIFACT,
            f"the signature is for {found.digest}, not for {subject.digest}",
        )
    if found.size != subject.size or found.media_type != subject.media_type:
        raise SignatureRefused(
            Failure.WRONG_ARTIFACT,
            f"the signature names {found.digest} as {found.media_type} of {found.size} bytes; "
            f"the manifest is {subject.media_type} of {subject.size} bytes",
        )
    return found
