"""Sigstore bundles v0.3 (`application/vnd.dev.sigstore.bundle.v0.3+json`) holding a keyless
DSSE attestation, as `cosign attest --new-bundle-format` writes them, verified offline.

One document carries everything: the Fulcio leaf certificate, the DSSE envelope it signed, and
Rekor's entry of kind `dsse` with three proofs that the log holds it: the signed entry
timestamp (SET), an RFC 6962 inclusion proof, and a checkpoint (a signed note of the tree's
size and root). Checked here, each with its own reason to refuse: the SET with the trusted
root's Rekor key (which also makes the integrated time trustworthy); the certificate valid at
that time and chaining to a Fulcio CA; the DSSE signature by the certificate's key; the
identity and OIDC issuer asked for; the log entry recording this payload, signature and
certificate; the inclusion proof reaching the checkpoint's root, signed by the same Rekor key;
and the in-toto statement being about the image asked for.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dockyard.core import checkpoint, dsse, in_toto, keys, merkle_proof, sigstore
from dockyard.core.signature_failure import Failure, SignatureRefused

BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
MAX_BUNDLE_BYTES = dsse.MAX_ENVELOPE_BYTES + 1024 * 1024
MAX_TLOG_ENTRIES = 4


@dataclass(frozen=True)
class Verified:
    """A bundle that holds: who signed, when Rekor logged it, and what the statement says."""

    identity: str
    issuer: str | None
    integrated_time: int
    log_index: int
    statement: in_toto.Statement


@dataclass(frozen=True)
class _Entry:
    log_id: str  # hex SHA-256 of the Rekor key's DER
    log_index: int
    integrated_time: int
    body: bytes
    set_signature: bytes
    proof_index: int
    tree_size: int
    root_hash: bytes
    hashes: tuple[bytes, ...]
    note: str


@dataclass(frozen=True)
class _Bundle:
    certificate: x509.Certificate
    envelope: bytes
    payload_type: str
    payload: bytes
    key_id: str
    signature: bytes
    entries: tuple[_Entry, ...]

    def logged_envelope(self) -> bytes:
        """The envelope as Rekor hashed it for `envelopeHash`: Go's encoding of the DSSE
        struct, fields in declaration order, no spaces, `<`, `>` and `&` escaped."""
        document = {
            "payloadType": self.payload_type,
            "payload": base64.b64encode(self.payload).decode(),
            "signatures": [
                {"keyid": self.key_id, "sig": base64.b64encode(self.signature).decode()}
            ],
        }
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        for character in "<>&\u2028\u2029":
            text = text.replace(character, f"\\u{ord(character):04x}")
        return text.encode()


def _malformed(message: str) -> SignatureRefused:
    return SignatureRefused(Failure.MALFORMED, message)


def _not_logged(message: str) -> SignatureRefused:
    return SignatureRefused(Failure.NOT_LOGGED, message)


def _b64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise TypeError("not a base64 string")
    return base64.b64decode(value, validate=True)


def _int64(value: Any) -> int:
    """A protobuf-JSON int64: a decimal string (or, leniently, a JSON integer)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise TypeError("not an integer")
    if not 0 <= number < 2**63:
        raise ValueError("out of range")
    return number


def _read_entry(entry: Any) -> _Entry:
    kind = entry["kindVersion"]
    if kind.get("kind") != "dsse" or kind.get("version") != "0.0.1":
        raise SignatureRefused(
            Failure.UNSUPPORTED,
            f"the Rekor entry is of kind {kind.get('kind')!r} {kind.get('version')!r}, "
            "not dsse 0.0.1",
        )
    proof = entry.get("inclusionProof")
    if not isinstance(proof, dict):
        raise _not_logged("the Rekor entry carries no inclusion proof")
    promise = entry.get("inclusionPromise")
    if not isinstance(promise, dict):
        raise _not_logged("the Rekor entry carries no signed entry timestamp (inclusionPromise)")
    hashes = proof["hashes"]
    if not isinstance(hashes, list) or len(hashes) > merkle_proof.MAX_PATH:
        raise TypeError("inclusion proof hashes")
    note = proof["checkpoint"]["envelope"]
    if not isinstance(note, str):
        raise TypeError("checkpoint")
    return _Entry(
        log_id=_b64(entry["logId"]["keyId"]).hex(),
        log_index=_int64(entry["logIndex"]),
        integrated_time=_int64(entry["integratedTime"]),
        body=_b64(entry["canonicalizedBody"]),
        set_signature=_b64(promise["signedEntryTimestamp"]),
        proof_index=_int64(proof["logIndex"]),
        tree_size=_int64(proof["treeSize"]),
        root_hash=_b64(proof["rootHash"]),
        hashes=tuple(_b64(value) for value in hashes),
        note=note,
    )


def read_bundle(data: bytes) -> _Bundle:
    """The pieces of a v0.3 bundle with a certificate and a DSSE envelope; SignatureRefused
    (malformed or unsupported) otherwise. Nothing is verified yet."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise _malformed(f"the sigstore bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise _malformed("the sigstore bundle is not JSON") from None
    if not isinstance(document, dict):
        raise _malformed("the sigstore bundle is not a JSON object")
    if document.get("mediaType") != BUNDLE_V03:
        raise SignatureRefused(
            Failure.UNSUPPORTED,
            f"the sigstore bundle's mediaType is {str(document.get('mediaType'))[:100]!r}, "
            f"not {BUNDLE_V03}",
        )
    envelope = document.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise SignatureRefused(
            Failure.UNSUPPORTED, "the sigstore bundle holds no DSSE envelope (a message signature?)"
        )
    try:
        material = document["verificationMaterial"]
        raw_certificate = _b64(material["certificate"]["rawBytes"])
        entries = material["tlogEntries"]
        signatures = envelope["signatures"]
        if not isinstance(signatures, list) or len(signatures) != 1:
            raise _malformed("a keyless DSSE envelope holds exactly one signature")
        signature = _b64(signatures[0]["sig"])
        key_id = signatures[0].get("keyid", "")
        payload_type = envelope["payloadType"]
        if not isinstance(key_id, str) or not isinstance(payload_type, str):
            raise TypeError("keyid or payloadType")
        payload = _b64(envelope["payload"])
        if not isinstance(entries, list) or not 0 < len(entries) <= MAX_TLOG_ENTRIES:
            raise _not_logged(
                f"the sigstore bundle holds {len(entries) if isinstance(entries, list) else 'no'}"
                f" transparency log entries, not 1 to {MAX_TLOG_ENTRIES}"
            )
        read = tuple(_read_entry(entry) for entry in entries)
    except SignatureRefused:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
        raise _malformed(f"the sigstore bundle is not one sigstore writes ({exc})") from None
    try:
        certificate = x509.load_der_x509_certificate(raw_certificate)
    except ValueError:
        raise _malformed("the bundle's certificate is not DER X.509") from None
    return _Bundle(
        certificate,
        json.dumps(envelope).encode(),
        payload_type,
        payload,
        key_id,
        signature,
        read,
    )


def _check_set(entry: _Entry, key: keys.PublicKey) -> None:
    signed = sigstore.canonical_set_payload(
        {
            "body": base64.b64encode(entry.body).decode(),
            "integratedTime": entry.integrated_time,
            "logID": entry.log_id,
            "logIndex": entry.log_index,
        }
    )
    if not keys.verify(key, entry.set_signature, signed):
        raise _not_logged(
            "Rekor's signed entry timestamp (inclusionPromise) does not verify with the "
            "trusted root's Rekor key"
        )


def _check_validity(certificate: x509.Certificate, when: int) -> None:
    instant = datetime.datetime.fromtimestamp(when, datetime.UTC)
    if not certificate.not_valid_before_utc <= instant <= certificate.not_valid_after_utc:
        raise SignatureRefused(
            Failure.EXPIRED_CERTIFICATE,
            f"Rekor logged the attestation at {instant.isoformat()}, outside the certificate's "
            f"validity ({certificate.not_valid_before_utc.isoformat()} to "
            f"{certificate.not_valid_after_utc.isoformat()})",
        )


def _check_identity(certificate: x509.Certificate, trust: sigstore.Trust) -> tuple[str, str | None]:
    names = sigstore.identities(certificate)
    if not names:
        raise SignatureRefused(Failure.WRONG_IDENTITY, "the certificate names no identity")
    if trust.identity is not None and trust.identity not in names:
        raise SignatureRefused(
            Failure.WRONG_IDENTITY,
            f"the certificate is for {', '.join(names[:3])}, not {trust.identity}",
        )
    found_issuer = sigstore.issuer(certificate)
    if trust.issuer is not None and found_issuer != trust.issuer:
        raise SignatureRefused(
            Failure.WRONG_IDENTITY,
            f"the certificate's OIDC issuer is {found_issuer or 'not given'}, not {trust.issuer}",
        )
    return (trust.identity or names[0]), found_issuer


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _check_body(entry: _Entry, bundle: _Bundle) -> None:
    """The log entry must record this envelope: its payload, signature and certificate."""
    try:
        body = json.loads(entry.body)
        spec = body["spec"]
        payload_hash = spec["payloadHash"]
        envelope_hash = spec["envelopeHash"]
        recorded = [
            (_b64(item["signature"]), base64.b64decode(item["verifier"], validate=True))
            for item in spec["signatures"]
        ]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise _malformed("the Rekor entry's body is not a dsse entry") from None
    if body.get("kind") != "dsse" or body.get("apiVersion") != "0.0.1":
        raise _not_logged("the Rekor entry's body is not of kind dsse 0.0.1")
    if payload_hash != {
        "algorithm": "sha256",
        "value": hashlib.sha256(bundle.payload).hexdigest(),
    }:
        raise _not_logged("the Rekor entry records another payload than the envelope's")
    if envelope_hash != {
        "algorithm": "sha256",
        "value": hashlib.sha256(bundle.logged_envelope()).hexdigest(),
    }:
        raise _not_logged("the Rekor entry records another envelope than the bundle's")
    certificate = _der(bundle.certificate)
    for signature, verifier in recorded:
        try:
            logged = x509.load_pem_x509_certificate(verifier)
        except ValueError:
            continue
        if signature == bundle.signature and _der(logged) == certificate:
            return
    raise _not_logged("the Rekor entry records another signature or certificate than the bundle's")


def _check_inclusion(entry: _Entry, key: keys.PublicKey) -> None:
    leaf = merkle_proof.leaf_hash(entry.body)
    root = merkle_proof.root_from_path(entry.proof_index, entry.tree_size, leaf, entry.hashes)
    if root is None or root != entry.root_hash:
        raise _not_logged(
            f"the inclusion proof of entry {entry.proof_index} does not lead to the root hash of "
            f"the tree of {entry.tree_size} entries"
        )
    found = checkpoint.parse(entry.note)
    if found is None:
        raise _not_logged("the inclusion proof's checkpoint is not a signed note")
    if found.size != entry.tree_size or found.root_hash != entry.root_hash:
        raise _not_logged(
            f"the checkpoint is of a tree of {found.size} entries with another root than the "
            "inclusion proof's"
            if found.root_hash != entry.root_hash
            else f"the checkpoint is of a tree of {found.size} entries, not {entry.tree_size}"
        )
    if not checkpoint.signed_by(found, key):
        raise _not_logged("the checkpoint's signature does not verify with the Rekor key")


def verify_bundle(
    data: bytes, trust: sigstore.Trust, digest: str, wanted_type: str | None
) -> Verified:
    """The attestation in `data` when every check holds against `trust` (Fulcio roots and
    intermediates, Rekor keys, identity and issuer if given) and its statement is about
    `digest` of predicate type `wanted_type` (any when None); SignatureRefused otherwise."""
    bundle = read_bundle(data)
    keyed = []
    for entry in bundle.entries:
        key = trust.rekor_key(entry.log_id)
        if key is None:
            raise _not_logged(
                f"the Rekor entry is from a log whose key is not in the trusted root "
                f"(logID {entry.log_id})"
            )
        _check_set(entry, key)
        keyed.append((entry, key))
    first = bundle.entries[0]
    for entry in bundle.entries:
        _check_validity(bundle.certificate, entry.integrated_time)
        if not sigstore.chain_is_trusted(bundle.certificate, [], trust, entry.integrated_time):
            raise SignatureRefused(
                Failure.UNTRUSTED_ROOT,
                "the certificate does not chain to a Fulcio CA of the trusted root at the time "
                "Rekor logged it, or is not for code signing",
            )
    signer = sigstore.certificate_key(bundle.certificate)
    opened = dsse.open_envelope(bundle.envelope, [("the Fulcio certificate", signer)])
    if opened.payload_type != dsse.IN_TOTO:
        raise SignatureRefused(
            Failure.UNSUPPORTED,
            f"the envelope holds {opened.payload_type[:100]!r}, not an in-toto statement",
        )
    identity, found_issuer = _check_identity(bundle.certificate, trust)
    for entry, key in keyed:
        _check_body(entry, bundle)
        _check_inclusion(entry, key)
    found = in_toto.check_statement(opened.payload, digest, wanted_type)
    return Verified(identity, found_issuer, first.integrated_time, first.log_index, found)
