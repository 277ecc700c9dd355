"""Keyless cosign signatures and Rekor bundles, checked offline against given trust roots.

A keyless signature carries a short-lived Fulcio certificate (`dev.sigstore.cosign/certificate`,
its chain in `dev.sigstore.cosign/chain`) and a Rekor bundle (`dev.sigstore.cosign/bundle`): the
log's signed entry timestamp (SET) over `{body, integratedTime, logID, logIndex}` as canonical
JSON. The certificate is valid for minutes; what makes the signature trustworthy later is that
Rekor saw it while the certificate was valid. So: the SET must verify with a Rekor key, the
logged entry must be this payload's hash, this signature and this certificate, and the
certificate must chain to a given root *at the integrated time*. No network, ever.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from dockyard.core import keys

# Fulcio's OIDC issuer extension: v1 holds the raw string, v2 a DER UTF8String.
ISSUER_V1 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
ISSUER_V2 = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
# A chain longer than this is not a Fulcio chain.
MAX_CHAIN_CERTIFICATES = 10


class TrustMaterialError(ValueError):
    """A root certificate, Rekor key or trusted_root.json that cannot be used."""


@dataclass(frozen=True)
class Trust:
    """What a keyless signature is checked against: certificate roots (and intermediates that
    came with them), Rekor public keys, and optionally the identity and issuer required."""

    roots: tuple[x509.Certificate, ...] = ()
    intermediates: tuple[x509.Certificate, ...] = ()
    rekor_keys: tuple[keys.PublicKey, ...] = ()
    identity: str | None = None
    issuer: str | None = None

    def rekor_key(self, log_id: str) -> keys.PublicKey | None:
        """The Rekor key a log ID names: the log ID is the SHA-256 of the key's DER."""
        return next(
            (key for key in self.rekor_keys if keys.fingerprint(key) == f"sha256:{log_id}"),
            None,
        )


def load_certificates(pem: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise TrustMaterialError("not PEM certificates") from None
    if len(certificates) > MAX_CHAIN_CERTIFICATES:
        raise TrustMaterialError(f"more than {MAX_CHAIN_CERTIFICATES} certificates")
    return certificates


def load_trusted_root(
    text: bytes,
) -> tuple[list[x509.Certificate], list[x509.Certificate], list[keys.PublicKey]]:
    """(roots, intermediates, Rekor keys) of a sigstore `trusted_root.json`."""
    try:
        document = json.loads(text)
        roots, intermediates, rekor = [], [], []
        for authority in document.get("certificateAuthorities") or []:
            for entry in authority["certChain"]["certificates"]:
                certificate = x509.load_der_x509_certificate(base64.b64decode(entry["rawBytes"]))
                if certificate.issuer == certificate.subject:
                    roots.append(certificate)
                else:
                    intermediates.append(certificate)
        for log in document.get("tlogs") or []:
            der = base64.b64decode(log["publicKey"]["rawBytes"])
            key = serialization.load_der_public_key(der)
            rekor.append(keys.load_public_key(_pem_of(key)))
    except (ValueError, KeyError, TypeError, binascii.Error, keys.KeyMaterialError) as exc:
        raise TrustMaterialError(f"not a usable sigstore trusted_root.json ({exc})") from None
    if not roots or not rekor:
        raise TrustMaterialError("the trusted root names no certificate authority or no Rekor log")
    return roots, intermediates, rekor


def _pem_of(key: Any) -> bytes:
    return bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def certificate_key(certificate: x509.Certificate) -> keys.PublicKey:
    """The certificate's public key, if it is one cosign signs with."""
    return keys.load_public_key(_pem_of(certificate.public_key()))


@dataclass(frozen=True)
class LogEntry:
    """A Rekor entry whose SET verified: when it was logged and what it logged."""

    integrated_time: int
    log_index: int
    body: dict[str, Any]


def canonical_set_payload(payload: dict[str, Any]) -> bytes:
    """What the SET signs: the four fields as canonical JSON (sorted keys, no spaces)."""
    signed = {name: payload[name] for name in ("body", "integratedTime", "logID", "logIndex")}
    return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode()


def read_bundle(text: str, trust: Trust) -> LogEntry | str:
    """The bundle's entry when its SET verifies with the Rekor key its logID names; else why
    not."""
    try:
        bundle = json.loads(text)
        payload = bundle["Payload"]
        log_id = payload["logID"]
        set_signature = base64.b64decode(bundle["SignedEntryTimestamp"], validate=True)
        signed = canonical_set_payload(payload)
        integrated, index = payload["integratedTime"], payload["logIndex"]
        body = json.loads(base64.b64decode(payload["body"], validate=True))
    except (ValueError, KeyError, TypeError, binascii.Error):
        return "the Rekor bundle is not one cosign writes"
    if not isinstance(integrated, int) or not isinstance(index, int) or not isinstance(body, dict):
        return "the Rekor bundle is not one cosign writes"
    key = trust.rekor_key(str(log_id))
    if key is None:
        return f"the Rekor entry is from a log whose key was not given (logID {str(log_id)[:64]})"
    if not keys.verify(key, set_signature, signed):
        return "Rekor's signed entry timestamp does not verify with the given Rekor key"
    return LogEntry(integrated, index, body)


def entry_matches(body: dict[str, Any], payload: bytes, signature: bytes, public: bytes) -> bool:
    """Whether a hashedrekord entry logged this payload's hash, this signature and this key or
    certificate (`public`: the PEM the signer used)."""
    try:
        if body["kind"] != "hashedrekord":
            return False
        spec = body["spec"]
        digest = spec["data"]["hash"]
        logged_signature = base64.b64decode(spec["signature"]["content"], validate=True)
        logged_public = base64.b64decode(spec["signature"]["publicKey"]["content"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        return False
    return (
        digest.get("algorithm") == "sha256"
        and digest.get("value") == hashlib.sha256(payload).hexdigest()
        and logged_signature == signature
        and _same_public_material(logged_public, public)
    )


def _same_public_material(first: bytes, second: bytes) -> bool:
    """Two PEMs naming the same certificate or public key, whatever their line breaks."""

    def der(pem: bytes) -> bytes | None:
        try:
            return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
        except ValueError:
            pass
        try:
            return bytes(
                serialization.load_pem_public_key(pem).public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        except (ValueError, TypeError):
            return None

    left = der(first)
    return left is not None and left == der(second)


def _must_be_ca(_policy: Any, _certificate: Any, extension: Any) -> None:
    if not extension.ca:
        raise ValueError("not a CA certificate")


def _must_sign_certificates(_policy: Any, _certificate: Any, extension: Any) -> None:
    if not extension.key_cert_sign:
        raise ValueError("may not sign certificates")


def _must_sign_code(_policy: Any, _certificate: Any, extension: Any) -> None:
    if extension is None or x509.oid.ExtendedKeyUsageOID.CODE_SIGNING not in extension:
        raise ValueError("not a code-signing certificate")


def chain_is_trusted(
    leaf: x509.Certificate, chain: Sequence[x509.Certificate], trust: Trust, when: int
) -> bool:
    """Whether `leaf` chains to one of the roots at the Unix time `when`, and may sign code."""
    ca_policy = (
        verification.ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, verification.Criticality.CRITICAL, _must_be_ca)
        .require_present(x509.KeyUsage, verification.Criticality.AGNOSTIC, _must_sign_certificates)
    )
    leaf_policy = verification.ExtensionPolicy.permit_all().require_present(
        x509.ExtendedKeyUsage, verification.Criticality.AGNOSTIC, _must_sign_code
    )
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(list(trust.roots)))
        .time(datetime.datetime.fromtimestamp(when, datetime.UTC))
        .max_chain_depth(MAX_CHAIN_CERTIFICATES)
        .extension_policies(ca_policy=ca_policy, ee_policy=leaf_policy)
        .build_client_verifier()
    )
    try:
        verifier.verify(leaf, [*chain, *trust.intermediates])
    except (verification.VerificationError, ValueError):
        # ValueError: a certificate the verifier cannot even parse as a chain member.
        return False
    return True


def identities(certificate: x509.Certificate) -> list[str]:
    """The subject alternative names Fulcio put in the certificate (email, URI)."""
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    found = [str(value) for value in names.get_values_for_type(x509.RFC822Name)]
    return found + [
        str(value) for value in names.get_values_for_type(x509.UniformResourceIdentifier)
    ]


def issuer(certificate: x509.Certificate) -> str | None:
    """The OIDC issuer that vouched for the identity, from Fulcio's extension."""
    for oid in (ISSUER_V2, ISSUER_V1):
        try:
            value = certificate.extensions.get_extension_for_oid(oid).value
        except x509.ExtensionNotFound:
            continue
        raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
        text = _der_utf8(raw) if oid == ISSUER_V2 else raw
        try:
            return text.decode() if text is not None else None
        except UnicodeDecodeError:
            return None
    return None


def _der_utf8(raw: bytes) -> bytes | None:
    """The text of a DER UTF8String (tag 12), short or long length form."""
    if len(raw) < 2 or raw[0] != 0x0C:
        return None
    length, start = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(raw) < 2 + count:
            return None
        length, start = int.from_bytes(raw[2 : 2 + count], "big"), 2 + count
    return raw[start : start + length] if len(raw) == start + length else None
