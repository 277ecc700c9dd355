"""Finding an image's notation signatures in a registry and verifying them against a trust store.

Notation stores a signature as a referrer of the image: a manifest whose artifact type (or,
as notation writes it by default, config media type) is `application/vnd.cncf.notary.signature`,
with one layer, the JWS or COSE envelope. They are found through the referrers API, or the
referrers tag `sha256-<hex>` on registries without it (`dockyard.client.referrers`). What a
registry sends is checked here too: each signature manifest must name the image as its subject.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from dockyard.client.errors import ClientError, NotFound
from dockyard.client.referrers import DIGEST, list_referrers
from dockyard.client.registry import RegistryClient
from dockyard.core import mediatypes as mt
from dockyard.core.manifest import Descriptor
from dockyard.core.notation import ARTIFACT_TYPE, NotationSignature
from dockyard.core.notation import verify_notation as verify_envelope
from dockyard.core.notation_envelope import ENVELOPE_TYPES, MAX_ENVELOPE_BYTES
from dockyard.core.signature_failure import Failure, SignatureRefused
from dockyard.core.trust_store import TrustStoreError, load_trust_store

# Past this many candidate signatures a registry is flooding the client, not answering it.
MAX_SIGNATURES = 100


class NotVerified(ClientError):
    """No signature of the image holds; `failures` lists why each one found was refused."""

    def __init__(self, message: str, failures: Sequence[Refusal] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)


@dataclass(frozen=True)
class Refusal:
    """A signature manifest that was found and refused, and why."""

    digest: str
    failure: Failure
    reason: str


@dataclass
class NotationReport:
    """The image verified and, per signature manifest, the result."""

    subject: Descriptor
    valid: list[tuple[str, NotationSignature]] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.subject.digest,
            "verified": bool(self.valid),
            "signatures": [
                {
                    "digest": digest,
                    "valid": True,
                    "envelope": found.envelope_type,
                    "signer": found.signer,
                    "root": found.root,
                    "signingTime": found.signing_time.astimezone(dt.UTC).isoformat(),
                }
                for digest, found in self.valid
            ]
            + [
                {
                    "digest": refusal.digest,
                    "valid": False,
                    "failure": refusal.failure.value,
                    "reason": refusal.reason,
                }
                for refusal in self.refused
            ],
        }


def trust_store(path: Path) -> list[x509.Certificate]:
    try:
        return load_trust_store(path)
    except TrustStoreError as exc:
        raise ClientError(f"trust store: {exc}") from None


async def verify_notation(
    registry: RegistryClient,
    repo: str,
    subject: Descriptor,
    roots: Sequence[x509.Certificate],
    now: dt.datetime | None = None,
) -> NotationReport:
    """Verify every notation signature of `subject`; NotVerified unless at least one holds."""
    report = NotationReport(subject)
    candidates = [
        entry
        for entry in await list_referrers(registry, repo, subject.digest)
        if entry.get("artifactType") in (ARTIFACT_TYPE, None)
        and DIGEST.fullmatch(str(entry.get("digest", "")))
    ]
    found = 0
    for entry in candidates[:MAX_SIGNATURES]:
        digest = str(entry["digest"])
        try:
            envelope = await _envelope(registry, repo, digest, subject)
        except SignatureRefused as exc:
            report.refused.append(Refusal(digest, exc.failure, str(exc)))
            found += 1
            continue
        if envelope is None:
            continue  # another kind of referrer that did not say its type in the listing
        found += 1
        media_type, data = envelope
        try:
            report.valid.append((digest, verify_envelope(media_type, data, subject, roots, now)))
        except SignatureRefused as exc:
            report.refused.append(Refusal(digest, exc.failure, str(exc)))
    if report.valid:
        return report
    if not found:
        raise NotVerified(f"{repo}@{subject.digest} has no notation signature")
    reasons = "; ".join(f"{refusal.digest}: {refusal.reason}" for refusal in report.refused)
    raise NotVerified(
        f"no valid notation signature for {repo}@{subject.digest}: {reasons}", report.refused
    )


async def _envelope(
    registry: RegistryClient, repo: str, digest: str, subject: Descriptor
) -> tuple[str, bytes] | None:
    """The signature manifest's envelope (media type, bytes); None when it is no signature."""
    try:
        manifest = await registry.get_manifest(repo, digest)
        document = manifest.json()
    except NotFound:
        return None
    except (ValueError, UnicodeDecodeError):
        raise SignatureRefused(Failure.MALFORMED, "the signature manifest is not JSON") from None
    if not isinstance(document, dict) or manifest.media_type != mt.OCI_MANIFEST:
        return None
    config = document.get("config") if isinstance(document.get("config"), dict) else {}
    kind = document.get("artifactType") or (config or {}).get("mediaType")
    if kind != ARTIFACT_TYPE:
        return None
    named = document.get("subject")
    if not isinstance(named, dict) or named.get("digest") != subject.digest:
        # A listing (the referrers tag is anyone's to write) naming a signature of another image.
        raise SignatureRefused(
            Failure.WRONG_ARTIFACT,
            f"the signature manifest's subject is {(named or {}).get('digest')!r}, "
            f"not {subject.digest}",
        )
    layers = document.get("layers")
    if not isinstance(layers, list) or len(layers) != 1 or not isinstance(layers[0], dict):
        raise SignatureRefused(
            Failure.MALFORMED, "a notation signature manifest has exactly one layer, its envelope"
        )
    layer = layers[0]
    media_type, blob, size = layer.get("mediaType"), layer.get("digest"), layer.get("size")
    if media_type not in ENVELOPE_TYPES:
        raise SignatureRefused(
            Failure.UNSUPPORTED, f"signature envelope of type {media_type!r} is not notation's"
        )
    if not isinstance(size, int) or not 0 < size <= MAX_ENVELOPE_BYTES:
        raise SignatureRefused(
            Failure.MALFORMED, f"the signature envelope's size {size!r} is out of bounds"
        )
    if not DIGEST.fullmatch(str(blob)):
        raise SignatureRefused(Failure.MALFORMED, f"the envelope's digest {blob!r} is not valid")
    pieces, received = [], 0
    # open_blob checks the bytes against the digest before the last piece is handed over.
    async for piece in registry.open_blob(repo, str(blob)):
        received += len(piece)
        if received > size:
            raise SignatureRefused(
                Failure.MALFORMED, f"the signature envelope is larger than its {size} bytes"
            )
        pieces.append(piece)
    return str(media_type), b"".join(pieces)
