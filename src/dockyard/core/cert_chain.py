"""A signer's X.509 chain checked up to a trust-store root, as notation checks it.

The chain comes leaf first. Each certificate must be signed by the next; the last one must be a
trust-store root itself or be signed by one. The leaf must be for signatures (key usage
digitalSignature) and, when it names extended key usages, for code signing; every issuer must
be a CA. Each certificate must be valid at every instant given (the signing time, and now).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from dockyard.core.signature_failure import Failure, SignatureRefused

MAX_CHAIN = 10


def name_of(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(no subject)"


def check_chain(
    chain: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    instants: Sequence[tuple[str, dt.datetime]],
) -> x509.Certificate:
    """The trust-store root the chain ends at; SignatureRefused when it does not hold.
    `instants` are (what, when) pairs such as ("signing time", t), each checked on every
    certificate of the chain and on the root."""
    if not chain:
        raise SignatureRefused(Failure.MALFORMED, "the envelope carries no certificate chain")
    if len(chain) > MAX_CHAIN:
        raise SignatureRefused(
            Failure.MALFORMED, f"the certificate chain is longer than {MAX_CHAIN} certificates"
        )
    for child, issuer in itertools.pairwise(chain):
        if not _issued_by(child, issuer):
            raise SignatureRefused(
                Failure.BROKEN_CHAIN,
                f"certificate {name_of(child)} is not signed by the next one in the chain, "
                f"{name_of(issuer)}",
            )
    root = _anchor(chain[-1], roots)
    _check_leaf(chain[0])
    # A root outside the chain signed its last certificate, so it must be a CA as well.
    outside = [] if _der(root) == _der(chain[-1]) else [root]
    for issuer in [*chain[1:], *outside]:
        _check_issuer(issuer)
    for certificate in [*chain, *outside]:
        for what, when in instants:
            _check_validity(certificate, what, when)
    return root


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _issued_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _anchor(last: x509.Certificate, roots: Sequence[x509.Certificate]) -> x509.Certificate:
    der = _der(last)
    for root in roots:
        if _der(root) == der:
            return root
    for root in roots:
        if _issued_by(last, root):
            return root
    trusted = ", ".join(sorted({name_of(root) for root in roots}))
    raise SignatureRefused(
        Failure.UNTRUSTED_ROOT,
        f"the certificate chain ends at {name_of(last)}, which is not in the trust store "
        f"nor signed by a certificate of it (the trust store holds: {trusted})",
    )


def _check_leaf(leaf: x509.Certificate) -> None:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.digital_signature:
        raise SignatureRefused(
            Failure.KEY_USAGE,
            f"the signing certificate {name_of(leaf)} is not for signatures "
            "(its key usage lacks digitalSignature)",
        )
    try:
        extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.CODE_SIGNING not in list(extended):
        raise SignatureRefused(
            Failure.KEY_USAGE,
            f"the signing certificate {name_of(leaf)} is not for code signing "
            "(its extended key usage lacks codeSigning)",
        )


def _check_issuer(issuer: x509.Certificate) -> None:
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise SignatureRefused(
            Failure.BROKEN_CHAIN,
            f"certificate {name_of(issuer)} signs another certificate but is not a CA",
        )
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not usage.key_cert_sign:
        raise SignatureRefused(
            Failure.BROKEN_CHAIN,
            f"certificate {name_of(issuer)} signs another certificate but its key usage "
            "lacks keyCertSign",
        )


def _check_validity(certificate: x509.Certificate, what: str, when: dt.datetime) -> None:
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if when > end:
        raise SignatureRefused(
            Failure.EXPIRED_CERTIFICATE,
            f"certificate {name_of(certificate)} expired on {end:%Y-%m-%d %H:%M:%S} UTC, "
            f"before the {what} ({when.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC)",
        )
    if when < start:
        raise SignatureRefused(
            Failure.EXPIRED_CERTIFICATE,
            f"certificate {name_of(certificate)} is valid only from "
            f"{start:%Y-%m-%d %H:%M:%S} UTC, after the {what} "
            f"({when.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC)",
        )
