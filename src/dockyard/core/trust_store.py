"""A trust store of X.509 roots read from disk: one certificate file, or a folder of them.

A folder may be notation's own layout (`x509/ca/<name>/*.crt`, `x509/signingAuthority/...`,
`x509/tsa/...`) or any folder of PEM or DER certificates; timestamping authorities (`tsa`)
vouch for times, not for signers, so they are never taken as roots.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

CERTIFICATE_SUFFIXES = frozenset({".crt", ".pem", ".cer", ".der"})
# A trust store is a handful of files; a folder of millions is a mistake, not a store.
MAX_FILES = 10_000
MAX_FILE_BYTES = 1024 * 1024


class TrustStoreError(ValueError):
    """The trust store cannot be read: one line naming the file and what is wrong."""


def load_trust_store(path: Path) -> list[x509.Certificate]:
    """Every certificate under `path`; at least one, or TrustStoreError."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(
            found
            for found in path.rglob("*")
            if found.is_file()
            and found.suffix.lower() in CERTIFICATE_SUFFIXES
            and "tsa" not in found.relative_to(path).parts[:-1]
            and not any(part.startswith(".") for part in found.relative_to(path).parts)
        )[: MAX_FILES + 1]
        if len(files) > MAX_FILES:
            raise TrustStoreError(f"{path}: more than {MAX_FILES} certificate files")
    else:
        raise TrustStoreError(f"{path}: no such file or folder")
    roots: list[x509.Certificate] = []
    for file in files:
        roots.extend(read_certificates(file))
    if not roots:
        raise TrustStoreError(
            f"{path}: no certificates (.crt, .pem, .cer or .der files) in the trust store"
        )
    return roots


def read_certificates(file: Path) -> list[x509.Certificate]:
    """The certificates of one PEM bundle or one DER file."""
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise TrustStoreError(f"{file}: larger than {MAX_FILE_BYTES} bytes")
        data = file.read_bytes()
    except OSError as exc:
        raise TrustStoreError(f"{file}: cannot read it ({exc.strerror})") from None
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise TrustStoreError(f"{file}: not a PEM or DER X.509 certificate") from None
