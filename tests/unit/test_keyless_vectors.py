"""core/sigstore.py through cosign.judge on cosign's keyless (Fulcio + Rekor) vector and its
key-based vector with a Rekor bundle: accepted offline against the given roots, and every
tampered copy refused for its own reason."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockyard.core import cosign, keys, sigstore

VECTORS = Path(__file__).parents[1] / "data" / "signatures"
KEYLESS = VECTORS / "cosign-simplesigning-keyless-fulcio-rekor"
KEYED = VECTORS / "cosign-simplesigning-key-rekor"
TRUSTED_ROOT = VECTORS / "sigstore-public-good-trusted-root" / "trusted_root.json"
IDENTITY = "mitr@redhat.com"
ISSUER = "https://github.com/login/oauth"

Failure = cosign.Failure


def _keyless_annotations() -> dict[str, str]:
    return {
        cosign.SIGNATURE_ANNOTATION: (KEYLESS / "signature.b64").read_text().strip(),
        cosign.CERTIFICATE_ANNOTATION: (KEYLESS / "certificate.pem").read_text(),
        cosign.CHAIN_ANNOTATION: (KEYLESS / "chain.pem").read_text(),
        cosign.BUNDLE_ANNOTATION: (KEYLESS / "rekor-bundle.json").read_text(),
    }


def _trust(**changes: object) -> sigstore.Trust:
    options: dict[str, object] = {
        "roots": tuple(sigstore.load_certificates((KEYLESS / "fulcio-root.pem").read_bytes())),
        "rekor_keys": (keys.load_public_key((KEYLESS / "rekor.pub").read_bytes()),),
        "identity": IDENTITY,
        "issuer": ISSUER,
    }
    options.update(changes)
    return sigstore.Trust(**options)  # type: ignore[arg-type]


def _judge(
    annotations: dict[str, str],
    trust: sigstore.Trust,
    payload: bytes | None = None,
    trusted: list[tuple[str, keys.PublicKey]] | None = None,
) -> cosign.Verdict:
    signed = (KEYLESS / "payload.json").read_bytes()
    claims = cosign.read_payload(signed)
    assert claims is not None
    return cosign.judge(
        signed if payload is None else payload,
        annotations,
        trusted or [],
        claims.manifest_digest,
        claims.docker_reference,
        trust,
    )


def _rekor_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _bundle(body: dict, integrated_time: int, rekor: ec.EllipticCurvePrivateKey) -> str:
    """A bundle as Rekor writes it, signed by a Rekor key of the test's own."""
    log_id = keys.fingerprint(rekor).removeprefix("sha256:")
    payload = {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "integratedTime": integrated_time,
        "logIndex": 7,
        "logID": log_id,
    }
    signed = sigstore.canonical_set_payload(payload)
    set_signature = base64.b64encode(keys.sign(rekor, signed)).decode()
    return json.dumps({"SignedEntryTimestamp": set_signature, "Payload": payload})


def _vector_body() -> tuple[dict, int]:
    bundle = json.loads((KEYLESS / "rekor-bundle.json").read_text())
    body = json.loads(base64.b64decode(bundle["Payload"]["body"]))
    return body, bundle["Payload"]["integratedTime"]


def test_keyless_vector_verifies_offline_with_the_given_root_and_rekor_key() -> None:
    verdict = _judge(_keyless_annotations(), _trust())
    assert verdict.valid, verdict
    assert verdict.key_name == f"certificate for {IDENTITY} (issuer {ISSUER})"


def test_keyless_vector_verifies_with_the_trusted_root_json() -> None:
    roots, intermediates, rekor = sigstore.load_trusted_root(TRUSTED_ROOT.read_bytes())
    trust = sigstore.Trust(tuple(roots), tuple(intermediates), tuple(rekor), IDENTITY, ISSUER)
    assert _judge(_keyless_annotations(), trust).valid
    # The chain from the trusted root alone: the signature's own chain left out.
    annotations = _keyless_annotations()
    del annotations[cosign.CHAIN_ANNOTATION]
    assert _judge(annotations, trust).valid


def test_tampered_keyless_copies_are_refused_each_with_its_reason() -> None:
    good = _keyless_annotations()
    payload = (KEYLESS / "payload.json").read_bytes()
    assert _judge(
        good, _trust(), payload.replace(b"fulcio-rekor-1", b"fulcio-rekor-2")
    ).failure is (Failure.INVALID_SIGNATURE)

    bundle = json.loads(good[cosign.BUNDLE_ANNOTATION])
    moved = dict(bundle, Payload=dict(bundle["Payload"], integratedTime=1674247893 + 1))
    assert _judge({**good, cosign.BUNDLE_ANNOTATION: json.dumps(moved)}, _trust()).failure is (
        Failure.LOG_INVALID
    )
    flipped = bytearray(base64.b64decode(bundle["SignedEntryTimestamp"]))
    flipped[-2] ^= 1
    broken = dict(bundle, SignedEntryTimestamp=base64.b64encode(bytes(flipped)).decode())
    assert _judge({**good, cosign.BUNDLE_ANNOTATION: json.dumps(broken)}, _trust()).failure is (
        Failure.LOG_INVALID
    )
    assert _judge({**good, cosign.BUNDLE_ANNOTATION: "{}"}, _trust()).failure is Failure.LOG_INVALID
    without = {k: v for k, v in good.items() if k != cosign.BUNDLE_ANNOTATION}
    assert _judge(without, _trust()).failure is Failure.NOT_LOGGED

    other_rekor = keys.load_public_key(keys.public_key_pem(_rekor_key()))
    refused = _judge(good, _trust(rekor_keys=(other_rekor,)))
    assert refused.failure is Failure.LOG_INVALID and "key was not given" in (refused.detail or "")

    assert _judge(good, _trust(identity="someone@example.com")).failure is Failure.OTHER_IDENTITY
    assert _judge(good, _trust(issuer="https://accounts.google.com")).failure is (
        Failure.OTHER_IDENTITY
    )
    # No roots: a certificate alone proves nothing.
    assert _judge(good, _trust(roots=())).failure is Failure.INVALID_SIGNATURE
    own_root, _ = _own_ca()
    assert _judge(good, _trust(roots=(own_root,))).failure is Failure.CERTIFICATE_UNTRUSTED
    garbage = {**good, cosign.CERTIFICATE_ANNOTATION: "-----BEGIN CERTIFICATE-----\nAA==\n"}
    assert _judge(garbage, _trust()).failure is Failure.CERTIFICATE_INVALID


def test_a_log_time_outside_the_certificates_ten_minutes_is_refused() -> None:
    """The SET is genuine (a Rekor key of our own) but says the signature was logged an hour
    after the certificate expired: the chain is checked at that time, and fails."""
    rekor = _rekor_key()
    body, logged_at = _vector_body()
    trust = _trust(rekor_keys=(keys.load_public_key(keys.public_key_pem(rekor)),))
    on_time = {**_keyless_annotations(), cosign.BUNDLE_ANNOTATION: _bundle(body, logged_at, rekor)}
    assert _judge(on_time, trust).valid
    late = {**on_time, cosign.BUNDLE_ANNOTATION: _bundle(body, logged_at + 3600, rekor)}
    assert _judge(late, trust).failure is Failure.CERTIFICATE_UNTRUSTED
    early = {**on_time, cosign.BUNDLE_ANNOTATION: _bundle(body, logged_at - 3600, rekor)}
    assert _judge(early, trust).failure is Failure.CERTIFICATE_UNTRUSTED
    # A genuine SET over an entry for another payload.
    other = json.loads(json.dumps(body))
    other["spec"]["data"]["hash"]["value"] = hashlib.sha256(b"something else").hexdigest()
    mismatch = {**on_time, cosign.BUNDLE_ANNOTATION: _bundle(other, logged_at, rekor)}
    assert _judge(mismatch, trust).failure is Failure.LOG_MISMATCH


def _keyed(annotations: dict[str, str] | None = None, **trust: object) -> cosign.Verdict:
    payload = (KEYED / "payload.json").read_bytes()
    claims = cosign.read_payload(payload)
    assert claims is not None
    given = annotations or {
        cosign.SIGNATURE_ANNOTATION: (KEYED / "signature.b64").read_text().strip(),
        cosign.BUNDLE_ANNOTATION: (KEYED / "rekor-bundle.json").read_text(),
    }
    return cosign.judge(
        payload,
        given,
        [("cosign.pub", keys.load_public_key((KEYED / "cosign.pub").read_bytes()))],
        claims.manifest_digest,
        claims.docker_reference,
        sigstore.Trust(**trust) if trust else None,  # type: ignore[arg-type]
    )


def test_key_based_vector_with_rekor_bundle() -> None:
    rekor = (keys.load_public_key((KEYED / "rekor.pub").read_bytes()),)
    assert _keyed().valid
    assert _keyed(rekor_keys=rekor).valid
    signature = (KEYED / "signature.b64").read_text().strip()
    # With a Rekor key given, the bundle is required and must verify.
    assert _keyed({cosign.SIGNATURE_ANNOTATION: signature}, rekor_keys=rekor).failure is (
        Failure.NOT_LOGGED
    )
    # The keyless vector's bundle: a genuine SET, but for another signature and key.
    assert (
        _keyed(
            {
                cosign.SIGNATURE_ANNOTATION: signature,
                cosign.BUNDLE_ANNOTATION: (KEYLESS / "rekor-bundle.json").read_text(),
            },
            rekor_keys=rekor,
        ).failure
        is Failure.LOG_MISMATCH
    )


def _own_ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not sigstore")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=4000))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return certificate, key


@pytest.mark.parametrize("bad", ["not json", json.dumps({"certificateAuthorities": []})])
def test_unusable_trusted_root_is_refused(bad: str) -> None:
    with pytest.raises(sigstore.TrustMaterialError):
        sigstore.load_trusted_root(bad.encode())


def test_der_issuer_and_identities_of_the_vector_certificate() -> None:
    [certificate] = sigstore.load_certificates((KEYLESS / "certificate.pem").read_bytes())
    assert sigstore.identities(certificate) == [IDENTITY]
    assert sigstore.issuer(certificate) == ISSUER
    assert (
        ExtendedKeyUsageOID.CODE_SIGNING
        in certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    # Fulcio v2 writes the issuer as a DER UTF8String; a long issuer needs the long length form.
    root, key = _own_ca()
    for text in ("https://token.actions.githubusercontent.com", "https://x.example/" + "a" * 200):
        raw = text.encode()
        length = bytes([len(raw)]) if len(raw) < 128 else bytes([0x81, len(raw)])
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(root.subject)
            .public_key(ec.generate_private_key(ec.SECP256R1()).public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(root.not_valid_before_utc)
            .not_valid_after(root.not_valid_after_utc)
            .add_extension(
                x509.UnrecognizedExtension(sigstore.ISSUER_V2, b"\x0c" + length + raw),
                critical=False,
            )
            .sign(key, hashes.SHA256())
        )
        assert sigstore.issuer(leaf) == text
        assert sigstore.identities(leaf) == []
