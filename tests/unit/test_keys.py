"""core/keys.py against signatures cosign made with four key algorithms, and its own keys."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from dockyard.core import keys

VECTORS = Path(__file__).parents[1] / "data" / "signatures"
MULTIALG = VECTORS / "cosign-simplesigning-multialg-keys"
ALGORITHMS = {
    "rsa2048": "RSA 2048",
    "rsa3072": "RSA 3072",
    "ecdsa-p256": "ECDSA P-256",
    "ecdsa-p384": "ECDSA P-384",
}


def _signature(name: str) -> bytes:
    return base64.b64decode((MULTIALG / f"{name}.sig.b64").read_text().strip())


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_cosign_signature_of_each_algorithm_verifies(name: str) -> None:
    key = keys.load_public_key((MULTIALG / f"{name}.pub").read_bytes())
    assert keys.describe(key) == ALGORITHMS[name]
    assert keys.verify(key, _signature(name), (MULTIALG / "payload.json").read_bytes())


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_tampered_payload_signature_or_other_key_is_refused(name: str) -> None:
    key = keys.load_public_key((MULTIALG / f"{name}.pub").read_bytes())
    payload = (MULTIALG / "payload.json").read_bytes()
    signature = _signature(name)
    # One byte of the payload changed: the digest it names.
    tampered = payload.replace(b"sha256:d37a", b"sha256:d37b")
    assert tampered != payload
    assert not keys.verify(key, signature, tampered)
    # Same bytes, re-serialised with spaces: a different byte string, so not signed.
    assert not keys.verify(key, signature, payload.replace(b'":', b'": '))
    flipped = bytearray(signature)
    flipped[len(flipped) // 2] ^= 0x01
    assert not keys.verify(key, bytes(flipped), payload)
    assert not keys.verify(key, b"", payload)
    for other in ALGORITHMS:
        if other != name:
            assert not keys.verify(key, _signature(other), payload)


def test_p384_signatures_are_sha256_as_cosign_makes_them() -> None:
    """cosign hashes with SHA-256 whatever the curve; a SHA-384 verifier would refuse them."""
    key = keys.load_public_key((MULTIALG / "ecdsa-p384.pub").read_bytes())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    payload = (MULTIALG / "payload.json").read_bytes()
    with pytest.raises(InvalidSignature):
        key.verify(_signature("ecdsa-p384"), payload, ec.ECDSA(hashes.SHA384()))
    assert keys.verify(key, _signature("ecdsa-p384"), payload)


def test_other_cosign_vectors_verify_with_their_keys() -> None:
    for folder in ("cosign-simplesigning-key", "cosign-simplesigning-key-rekor"):
        directory = VECTORS / folder
        key = keys.load_public_key((directory / "cosign.pub").read_bytes())
        signature = base64.b64decode((directory / "signature.b64").read_text().strip())
        assert keys.verify(key, signature, (directory / "payload.json").read_bytes())


def test_generated_key_round_trip_through_encrypted_pem() -> None:
    private = keys.generate_private_key()
    assert keys.describe(private) == "ECDSA P-256"
    pem = keys.private_key_pem(private, b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = keys.load_private_key(pem, b"correct horse")
    public = keys.load_public_key(keys.public_key_pem(private))
    assert keys.fingerprint(public) == keys.fingerprint(loaded) == keys.fingerprint(private)
    data = b'{"critical":{}}'
    signature = keys.sign(loaded, data)
    assert keys.verify(public, signature, data)
    assert not keys.verify(public, signature, data + b" ")
    other = keys.load_public_key(keys.public_key_pem(keys.generate_private_key()))
    assert not keys.verify(other, signature, data)


def test_rsa_private_key_signs_pkcs1v15_sha256() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = keys.private_key_pem(private, b"password1")
    loaded = keys.load_private_key(pem, b"password1")
    public = keys.load_public_key(keys.public_key_pem(loaded))
    assert keys.verify(public, keys.sign(loaded, b"data"), b"data")


def test_wrong_or_missing_password_is_refused() -> None:
    pem = keys.private_key_pem(keys.generate_private_key(), b"correct horse")
    with pytest.raises(keys.KeyMaterialError, match="password"):
        keys.load_private_key(pem, b"wrong horse")
    with pytest.raises(keys.KeyMaterialError):
        keys.load_private_key(pem, None)
    with pytest.raises(keys.KeyMaterialError, match="empty"):
        keys.private_key_pem(keys.generate_private_key(), b"")


def test_unusable_public_keys_are_refused() -> None:
    with pytest.raises(keys.KeyMaterialError):
        keys.load_public_key(b"not a key")
    with pytest.raises(keys.KeyMaterialError):
        keys.load_public_key(b"")
    # A private key where a public key belongs.
    with pytest.raises(keys.KeyMaterialError):
        keys.load_public_key(keys.private_key_pem(keys.generate_private_key(), b"password1"))
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(keys.KeyMaterialError, match="1024"):
        keys.load_public_key(keys.public_key_pem(small))
    k1 = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(keys.KeyMaterialError, match="curve"):
        keys.load_public_key(keys.public_key_pem(k1))
    edwards = ed25519.Ed25519PrivateKey.generate().public_key()
    pem = edwards.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(keys.KeyMaterialError, match="unsupported"):
        keys.load_public_key(pem)
