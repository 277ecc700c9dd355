"""A server certificate and its key, checked before serving: what is wrong with which file.

granian reads the pair only once its workers start, and a bad one ended `dockyard serve` with
a Rust panic and a traceback; a key of another certificate passed `config check`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # cryptography is imported only when a certificate is checked
    from cryptography.hazmat.primitives.asymmetric.types import (
        CertificatePublicKeyTypes,
        PublicKeyTypes,
    )


class TlsFileError(ValueError):
    """One line naming the file and what is wrong with it."""


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    names: list[str]  # DNS names and IP addresses the certificate is valid for
    self_signed: bool
    not_after: dt.datetime  # UTC


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsFileError(f"{what} {path}: cannot read it ({exc.strerror})") from None


def check_pair(cert_path: Path, key_path: Path) -> ServerCertificate:
    """The certificate (first of the chain) and the key must be PEM, the key unencrypted and
    the one of that certificate, and the certificate not expired."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        chain = x509.load_pem_x509_certificates(_read(cert_path, "tls_cert"))
    except ValueError:
        raise TlsFileError(
            f"tls_cert {cert_path}: not a PEM certificate (expected a "
            "'-----BEGIN CERTIFICATE-----' block)"
        ) from None
    try:
        key = serialization.load_pem_private_key(_read(key_path, "tls_key"), password=None)
    except TypeError:
        raise TlsFileError(
            f"tls_key {key_path}: the key is encrypted; give it without a "
            "passphrase (openssl pkey -in KEY -out PLAIN)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsFileError(
            f"tls_key {key_path}: not a PEM private key (expected a "
            "'-----BEGIN PRIVATE KEY-----' block)"
        ) from None
    leaf = chain[0]

    def spki(public_key: PublicKeyTypes | CertificatePublicKeyTypes) -> bytes:
        return public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    if spki(leaf.public_key()) != spki(key.public_key()):
        raise TlsFileError(
            f"tls_key {key_path} does not match tls_cert {cert_path}: the key "
            "belongs to another certificate"
        )
    if leaf.not_valid_after_utc < dt.datetime.now(dt.UTC):
        raise TlsFileError(
            f"tls_cert {cert_path}: expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [
            *san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
        ]
    except x509.ExtensionNotFound:
        names = []
    return ServerCertificate(
        names=names, self_signed=leaf.issuer == leaf.subject, not_after=leaf.not_valid_after_utc
    )
