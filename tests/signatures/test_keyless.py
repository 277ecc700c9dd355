"""Keyless signatures through a real registry: a CA, a short-lived code-signing certificate and
a Rekor key of the test's own stand in for Fulcio and Rekor, and `dockyard verify` checks the
signature image it finds offline against them."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockyard.core import cosign, keys, sigstore
from tests.signatures.helpers import dockyard, push_image, push_signature_image
from tests.support.server import RunningRegistry

IDENTITY = "builder@example.com"
ISSUER = "https://issuer.example.com"


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


class Sigstore:
    """A CA and a Rekor key, and what cosign's keyless signing writes with them."""

    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test fulcio")])
        self.now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        self.root = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - datetime.timedelta(days=1))
            .not_valid_after(self.now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.root_key, hashes.SHA384())
        )
        self.rekor = ec.generate_private_key(ec.SECP256R1())

    def leaf(self, private: ec.EllipticCurvePrivateKey) -> x509.Certificate:
        """Ten minutes of validity, as Fulcio gives, naming the identity and its issuer."""
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.root.subject)
            .public_key(private.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now)
            .not_valid_after(self.now + datetime.timedelta(minutes=10))
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(IDENTITY)]), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), False)
            .add_extension(
                x509.UnrecognizedExtension(sigstore.ISSUER_V1, ISSUER.encode()), critical=False
            )
            .sign(self.root_key, hashes.SHA384())
        )

    def annotations(self, payload: bytes, logged_after: int = 60) -> dict[str, str]:
        private = ec.generate_private_key(ec.SECP256R1())
        certificate = _pem(self.leaf(private))
        signature = keys.sign(private, payload)
        body = {
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {
                    "hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}
                },
                "signature": {
                    "content": base64.b64encode(signature).decode(),
                    "publicKey": {"content": base64.b64encode(certificate.encode()).decode()},
                },
            },
        }
        entry = {
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
            "integratedTime": int(self.now.timestamp()) + logged_after,
            "logIndex": 1,
            "logID": keys.fingerprint(self.rekor).removeprefix("sha256:"),
        }
        set_signature = keys.sign(self.rekor, sigstore.canonical_set_payload(entry))
        bundle = {
            "SignedEntryTimestamp": base64.b64encode(set_signature).decode(),
            "Payload": entry,
        }
        return {
            cosign.SIGNATURE_ANNOTATION: base64.b64encode(signature).decode(),
            cosign.CERTIFICATE_ANNOTATION: certificate,
            cosign.CHAIN_ANNOTATION: _pem(self.root),
            cosign.BUNDLE_ANNOTATION: json.dumps(bundle),
        }

    def write(self, home: Path) -> tuple[Path, Path]:
        root, rekor = home / "root.pem", home / "rekor.pub"
        root.write_text(_pem(self.root))
        rekor.write_bytes(keys.public_key_pem(self.rekor))
        return root, rekor


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def test_keyless_signature_in_a_registry_verifies_offline(home: Path, start_registry) -> None:
    server: RunningRegistry = start_registry()
    host, repo = server.host, "sigs/keyless"
    digest = push_image(home, host, repo)
    authority = Sigstore()
    root, rekor = authority.write(home)
    payload = cosign.payload(f"{host}/{repo}", digest)
    push_signature_image(server.url, repo, digest, payload, authority.annotations(payload))
    trust = [
        "--certificate-root", str(root), "--rekor-key", str(rekor),
        "--certificate-oidc-issuer", ISSUER,
    ]  # fmt: skip

    ok = dockyard(
        "verify", *trust, "--certificate-identity", IDENTITY, f"{host}/{repo}:1.0", home=home
    )
    assert f"signed by certificate for {IDENTITY} (issuer {ISSUER})" in ok.stdout

    other = dockyard(
        "verify", *trust, "--certificate-identity", "someone@example.com",
        f"{host}/{repo}:1.0", home=home, check=False,
    )  # fmt: skip
    assert other.returncode == 1
    assert "certificate for another identity or issuer" in other.stderr

    # Logged an hour after the certificate expired: the SET is genuine, the timing is not.
    push_signature_image(
        server.url, repo, digest, payload, authority.annotations(payload, logged_after=3600)
    )
    late = dockyard(
        "verify", *trust, "--certificate-identity", IDENTITY, f"{host}/{repo}:1.0",
        home=home, check=False,
    )  # fmt: skip
    assert late.returncode == 1 and "certificate not trusted" in late.stderr

    # Another CA's root, another Rekor key: refused each for its reason.
    push_signature_image(server.url, repo, digest, payload, authority.annotations(payload))
    stranger_root, stranger_rekor = Sigstore().write(home / "..")
    untrusted = dockyard(
        "verify", "--certificate-root", str(stranger_root), "--rekor-key", str(rekor),
        "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER,
        f"{host}/{repo}:1.0", home=home, check=False,
    )  # fmt: skip
    assert untrusted.returncode == 1 and "certificate not trusted" in untrusted.stderr
    unlogged = dockyard(
        "verify", "--certificate-root", str(root), "--rekor-key", str(stranger_rekor),
        "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER,
        f"{host}/{repo}:1.0", home=home, check=False,
    )  # fmt: skip
    assert unlogged.returncode == 1
    assert "the Rekor bundle does not verify" in unlogged.stderr

    # Keyless trust needs its whole set of options.
    for partial in (
        ["--certificate-root", str(root), "--certificate-identity", IDENTITY],
        ["--certificate-root", str(root), "--rekor-key", str(rekor)],
        [],
    ):
        usage = dockyard("verify", *partial, f"{host}/{repo}:1.0", home=home, check=False)
        assert usage.returncode == 2, (partial, usage.stderr)


def test_keyless_with_a_trusted_root_json(home: Path, start_registry) -> None:
    server: RunningRegistry = start_registry()
    host, repo = server.host, "sigs/keyless-root"
    digest = push_image(home, host, repo)
    authority = Sigstore()
    payload = cosign.payload(f"{host}/{repo}", digest)
    annotations = authority.annotations(payload)
    # The chain comes from the trusted root only.
    del annotations[cosign.CHAIN_ANNOTATION]
    push_signature_image(server.url, repo, digest, payload, annotations)
    der_root = authority.root.public_bytes(serialization.Encoding.DER)
    der_rekor = authority.rekor.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    trusted_root = home / "trusted_root.json"
    trusted_root.write_text(
        json.dumps(
            {
                "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
                "tlogs": [{"publicKey": {"rawBytes": base64.b64encode(der_rekor).decode()}}],
                "certificateAuthorities": [
                    {
                        "certChain": {
                            "certificates": [{"rawBytes": base64.b64encode(der_root).decode()}]
                        }
                    }
                ],
            }
        )
    )
    ok = dockyard(
        "verify", "--trusted-root", str(trusted_root), "--certificate-identity", IDENTITY,
        "--certificate-oidc-issuer", ISSUER, f"{host}/{repo}:1.0", home=home,
    )  # fmt: skip
    assert f"signed by certificate for {IDENTITY}" in ok.stdout
    trusted_root.write_text("{}")
    bad = dockyard(
        "verify", "--trusted-root", str(trusted_root), "--certificate-identity", IDENTITY,
        "--certificate-oidc-issuer", ISSUER, f"{host}/{repo}:1.0", home=home, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "trusted root" in bad.stderr
