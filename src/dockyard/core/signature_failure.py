"""Why a signature was refused: one kind per reason, so that a caller (and a test) can tell an
expired certificate from an untrusted root or a payload for another image, and the user reads
one sentence that names what is wrong."""

from __future__ import annotations

import enum


class Failure(enum.Enum):
    MALFORMED = "malformed envelope"
    UNSUPPORTED = "unsupported envelope"
    BAD_SIGNATURE = "bad signature"
    BROKEN_CHAIN = "broken certificate chain"
    UNTRUSTED_ROOT = "untrusted root"
    EXPIRED_CERTIFICATE = "expired certificate"
    KEY_USAGE = "certificate not for code signing"
    SIGNATURE_EXPIRED = "expired signature"
    WRONG_ARTIFACT = "signed for another artifact"
    WRONG_PREDICATE = "attestation of another type"
    WRONG_IDENTITY = "signed by another identity"
    NOT_LOGGED = "not proven in the transparency log"


class SignatureRefused(ValueError):
    """A signature that does not hold; `failure` says which check refused it."""

    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure
