"""Signing keys as cosign uses them: PEM files, ECDSA or RSA, always SHA-256.

cosign's key-based signatures are ASN.1/DER ECDSA over SHA-256 (also with a P-384 key, where
one might expect SHA-384) or RSA PKCS#1 v1.5 over SHA-256. Keys that dockyard makes are ECDSA
P-256, the private half in encrypted PKCS#8 PEM. Pure functions, no files, no I/O.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

# What cosign verifies with a key; smaller RSA keys are no longer safe to trust.
_CURVES: dict[str, str] = {"secp256r1": "ECDSA P-256", "secp384r1": "ECDSA P-384"}
MIN_RSA_BITS = 2048


class KeyMaterialError(ValueError):
    """A key file that is not a key we can use (format, algorithm, size or password)."""


def generate_private_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 private key, the kind cosign generates."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(private_key: PrivateKey, password: bytes) -> bytes:
    """The private key as encrypted PKCS#8 PEM (`ENCRYPTED PRIVATE KEY`)."""
    if not password:
        raise KeyMaterialError("a private key is only written encrypted: the password is empty")
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )


def public_key_pem(key: PublicKey | PrivateKey) -> bytes:
    """The public half as SubjectPublicKeyInfo PEM (`PUBLIC KEY`), as in cosign.pub."""
    public = _public_of(key)
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _public_of(key: PublicKey | PrivateKey) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        return key.public_key()
    return key


def load_private_key(pem: bytes, password: bytes | None) -> PrivateKey:
    """Decrypt a PEM private key; refuse algorithms cosign does not sign with."""
    try:
        key = serialization.load_pem_private_key(pem, password or None)
    except TypeError as exc:  # encrypted without a password, or a password for a plain key
        raise KeyMaterialError(f"cannot read the private key: {exc}") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyMaterialError(
            "cannot read the private key: not a PEM private key, or the password is wrong"
        ) from None
    if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        _check_supported(key.public_key())
        return key
    raise KeyMaterialError(f"unsupported private key type {type(key).__name__}")


def load_public_key(pem: bytes) -> PublicKey:
    """Read a PEM public key: ECDSA P-256 or P-384, or RSA of at least 2048 bits."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyMaterialError("not a PEM public key") from None
    if isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        _check_supported(key)
        return key
    raise KeyMaterialError(f"unsupported public key type {type(key).__name__}")


def _check_supported(key: PublicKey) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            raise KeyMaterialError(f"unsupported elliptic curve {key.curve.name}")
    elif key.key_size < MIN_RSA_BITS:
        raise KeyMaterialError(f"RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} needed")


def describe(key: PublicKey | PrivateKey) -> str:
    """Human name of the algorithm: `ECDSA P-256`, `RSA 3072`."""
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return _CURVES.get(key.curve.name, f"ECDSA {key.curve.name}")
    return f"RSA {key.key_size}"


def fingerprint(key: PublicKey | PrivateKey) -> str:
    """`sha256:` of the public key's DER SubjectPublicKeyInfo: names a key in messages."""
    public = _public_of(key)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "sha256:" + hashlib.sha256(der).hexdigest()


def sign(private_key: PrivateKey, data: bytes) -> bytes:
    """A cosign signature over `data`: DER ECDSA or PKCS#1 v1.5, SHA-256 either way."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    return private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def verify(public_key: PublicKey, signature: bytes, data: bytes) -> bool:
    """True when `signature` is `public_key`'s cosign signature over exactly `data`."""
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True
