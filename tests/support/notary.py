"""Certificate chains and notation JWS envelopes made in the test, for the cases no vector has:
an expired certificate, an intermediate, a certificate not for code signing, an ECDSA signer.

Envelopes are written the way notation writes them (flattened JWS, `crit` naming the signing
scheme, the chain in `x5c`), so that the verifier meets the same shape as the real tool's.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)


@dataclass
class Issued:
    certificate: x509.Certificate
    key: Any

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            # RFC 4514 writes the last attribute first: CN leads, as notation's names read.
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Dockyard tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def issue(
    common_name: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    key: Any = None,
    not_before: dt.datetime = NOW - 30 * DAY,
    not_after: dt.datetime = NOW + 365 * DAY,
    code_signing: bool = True,
) -> Issued:
    """A certificate for `common_name`, signed by `issuer` (self-signed without one)."""
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.certificate.subject if issuer else _name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )
    if not ca:
        usage = (
            ExtendedKeyUsageOID.CODE_SIGNING if code_signing else ExtendedKeyUsageOID.SERVER_AUTH
        )
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    signer = issuer.key if issuer else key
    certificate = builder.sign(signer, hashes.SHA256())
    return Issued(certificate, key)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class JwsSigner:
    """Signs notation payloads with `chain[0]`'s key; fields change what the header says."""

    chain: list[Issued]
    signing_time: dt.datetime = NOW - DAY
    extra_protected: dict[str, Any] = field(default_factory=dict)
    extra_critical: list[str] = field(default_factory=list)

    def sign(self, media_type: str, digest: str, size: int) -> bytes:
        payload = json.dumps(
            {"targetArtifact": {"digest": digest, "mediaType": media_type, "size": size}},
            separators=(",", ":"),
        ).encode()
        key = self.chain[0].key
        algorithm = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "PS256"
        protected = {
            "alg": algorithm,
            "crit": ["io.cncf.notary.signingScheme", *self.extra_critical],
            "cty": "application/vnd.cncf.notary.payload.v1+json",
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": self.signing_time.isoformat(timespec="seconds"),
            **self.extra_protected,
        }
        protected_text = b64url(json.dumps(protected, separators=(",", ":")).encode())
        payload_text = b64url(payload)
        signing_input = f"{protected_text}.{payload_text}".encode()
        if algorithm == "ES256":
            r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        else:
            signature = key.sign(
                signing_input,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
        envelope = {
            "payload": payload_text,
            "protected": protected_text,
            "header": {
                "x5c": [
                    base64.b64encode(
                        issued.certificate.public_bytes(serialization.Encoding.DER)
                    ).decode()
                    for issued in self.chain
                ],
                "io.cncf.notary.signingAgent": "dockyard-tests",
            },
            "signature": b64url(signature),
        }
        return json.dumps(envelope).encode()


def cose_envelope(
    chain: list[Issued],
    media_type: str,
    digest: str,
    size: int,
    signing_time: dt.datetime = NOW - DAY,
) -> bytes:
    """A COSE_Sign1 notation envelope (PS256, RSA signer) as notation writes it: the
    signing time a CBOR tag-1 time in the protected header, the chain in x5chain (label 33)."""
    import cbor2

    payload = json.dumps(
        {"targetArtifact": {"mediaType": media_type, "digest": digest, "size": size}},
        separators=(",", ":"),
    ).encode()
    protected = cbor2.dumps(
        {
            1: -37,
            2: ["io.cncf.notary.signingScheme"],
            3: "application/vnd.cncf.notary.payload.v1+json",
            "io.cncf.notary.signingScheme": "notary.x509",
            "io.cncf.notary.signingTime": cbor2.CBORTag(1, int(signing_time.timestamp())),
        }
    )
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    signature = chain[0].key.sign(
        to_sign, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256()
    )
    chain_der = [issued.certificate.public_bytes(serialization.Encoding.DER) for issued in chain]
    unprotected = {33: chain_der, "io.cncf.notary.signingAgent": "dockyard-tests"}
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))
