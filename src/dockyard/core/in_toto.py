"""in-toto attestation statements: what an attestation says, and about which artifact.

A statement names its subjects by digest and carries one predicate of a named type (SLSA
provenance, an SPDX or CycloneDX SBOM, or any URI). cosign writes Statement v0.1 with the
predicate types below for its short names; both v0.1 and v1 statements are read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dockyard.core.signature_failure import Failure, SignatureRefused

STATEMENT_V01 = "https://in-toto.io/Statement/v0.1"
STATEMENT_V1 = "https://in-toto.io/Statement/v1"
STATEMENT_TYPES = frozenset({STATEMENT_V01, STATEMENT_V1})
# cosign's `--type` short names and the predicate types they stand for.
PREDICATE_TYPES = {
    "slsaprovenance": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance02": "https://slsa.dev/provenance/v0.2",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "spdx": "https://spdx.dev/Document",
    "spdxjson": "https://spdx.dev/Document",
    "cyclonedx": "https://cyclonedx.org/bom",
    "link": "https://in-toto.io/Link/v1",
    "vuln": "https://cosign.sigstore.dev/attestation/vuln/v1",
    "openvex": "https://openvex.dev/ns",
    "custom": "https://cosign.sigstore.dev/attestation/v1",
}


def predicate_type(name: str) -> str:
    """A short name's predicate type, or `name` itself when it is a URI."""
    if name in PREDICATE_TYPES:
        return PREDICATE_TYPES[name]
    scheme, sep, rest = name.partition("://")
    if sep and scheme in ("https", "http") and rest and not any(c.isspace() for c in name):
        return name
    raise ValueError(
        f"predicate type {name!r}: one of {', '.join(sorted(PREDICATE_TYPES))}, or a URI "
        "such as https://example.com/my-predicate/v1"
    )


def statement(subject_name: str, digest: str, kind: str, predicate: Any) -> bytes:
    """A Statement v0.1 about the one artifact `digest` (`sha256:<hex>`), as cosign writes it."""
    algorithm, _, encoded = digest.partition(":")
    document = {
        "_type": STATEMENT_V01,
        "predicateType": kind,
        "subject": [{"name": subject_name, "digest": {algorithm: encoded}}],
        "predicate": predicate,
    }
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Statement:
    predicate_type: str
    subjects: tuple[tuple[str, str], ...]  # (name, "sha256:<hex>")


def read_statement(payload: bytes) -> Statement:
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise SignatureRefused(Failure.MALFORMED, "the statement is not JSON") from None
    if not isinstance(document, dict) or document.get("_type") not in STATEMENT_TYPES:
        raise SignatureRefused(Failure.MALFORMED, "the payload is not an in-toto statement")
    kind, subjects = document.get("predicateType"), document.get("subject")
    if not isinstance(kind, str) or not isinstance(subjects, list):
        raise SignatureRefused(
            Failure.MALFORMED, "the statement has no predicateType and subject list"
        )
    named = []
    for entry in subjects:
        digests = entry.get("digest") if isinstance(entry, dict) else None
        if not isinstance(digests, dict):
            continue
        for algorithm, encoded in digests.items():
            named.append((str(entry.get("name", "")), f"{algorithm}:{encoded}"))
    return Statement(kind, tuple(named))


def check_statement(payload: bytes, digest: str, wanted_type: str | None) -> Statement:
    """The statement, when it is about `digest` and (if given) of predicate type
    `wanted_type`; SignatureRefused otherwise."""
    found = read_statement(payload)
    if digest not in (subject for _, subject in found.subjects):
        named = ", ".join(subject for _, subject in found.subjects[:5]) or "nothing"
        raise SignatureRefused(
            Failure.WRONG_ARTIFACT, f"the statement is about {named}, not {digest}"
        )
    if wanted_type is not None and found.predicate_type != wanted_type:
        raise SignatureRefused(
            Failure.WRONG_PREDICATE,
            f"the statement's predicate type is {found.predicate_type}, not {wanted_type}",
        )
    return found
