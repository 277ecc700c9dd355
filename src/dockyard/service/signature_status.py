"""The verification status of each signature and attestation of an image, for its web page:
cosign signatures (the `.sig` tag's layers and signature referrers), cosign attestations (the
`.att` tag's layers and DSSE referrers) and notation signature referrers, each judged under the
repository's signature policy by the same checks as the gate (`dockyard.service.signature_check`)
— valid (by which policy key or notation root), invalid (why), or not checked.

A judgement depends only on the repository, the policy version and content-addressed bytes (the
signature manifest, its blobs, the image digest), so it is remembered by those; a minute at most,
since a notation certificate or signature can expire.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dockyard.core.bounded_cache import BoundedCache
from dockyard.metadata.base import ManifestRecord, SignaturePolicy
from dockyard.service.signature_sources import json_object, manifest_of, referrers_of

if TYPE_CHECKING:
    from dockyard.service.repository import Repository
    from dockyard.service.signature_check import SignatureChecker

COSIGN_SIGNATURE = "cosign signature"
COSIGN_ATTESTATION = "cosign attestation"
NOTATION_SIGNATURE = "notation signature"
# Media and artifact types, spelled here so that listing never loads the cryptography.
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_ARTIFACT_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
NOTATION_ARTIFACT = "application/vnd.cncf.notary.signature"
# Signature manifests and layers shown per image: a repository full of junk referrers costs a
# bounded amount of work per page.
MAX_MANIFESTS = 32
MAX_LAYERS = 32
REMEMBERED_SECONDS = 60.0

VALID, INVALID, NOT_CHECKED = "valid", "invalid", "not checked"


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    kind: str  # COSIGN_SIGNATURE, COSIGN_ATTESTATION or NOTATION_SIGNATURE
    found_as: str  # the tag it is under, or "referrer"
    manifest: str  # the signature manifest's digest
    layer: int  # which of its layers (from 1)
    state: str  # VALID, INVALID or NOT_CHECKED
    detail: str  # the key or root, the reason, or why nothing was checked


@dataclass(frozen=True, slots=True)
class Found:
    """A signature manifest of the image: what kind, where, its digest and parsed body."""

    kind: str
    found_as: str
    digest: str
    document: dict[str, Any]


def _layers(found: Found) -> list[dict[str, Any]]:
    """The layers that are signatures: cosign's simple-signing or DSSE ones; a notation
    signature manifest's one envelope."""
    layers = found.document.get("layers")
    if not isinstance(layers, list):
        return []
    if found.kind != NOTATION_SIGNATURE:
        wanted = SIMPLESIGNING if found.kind == COSIGN_SIGNATURE else DSSE_ENVELOPE
        return [
            layer
            for layer in layers[:MAX_LAYERS]
            if isinstance(layer, dict) and layer.get("mediaType") == wanted
        ]
    return [layer for layer in layers[:1] if isinstance(layer, dict)]


async def signature_manifests(repository: Repository, digest: str) -> list[Found]:
    """The image's signature and attestation manifests, by cosign's tags and as referrers."""
    found: list[Found] = []
    algorithm, _, encoded = digest.partition(":")
    for kind, tag in (
        (COSIGN_SIGNATURE, f"{algorithm}-{encoded}.sig"),
        (COSIGN_ATTESTATION, f"{algorithm}-{encoded}.att"),
    ):
        tagged = await manifest_of(repository, tag)
        if tagged is not None:
            found.append(Found(kind, tag, tagged[0][1], json_object(tagged[1])))
    kinds = {
        SIMPLESIGNING: COSIGN_SIGNATURE,
        COSIGN_ARTIFACT_SIG: COSIGN_SIGNATURE,
        DSSE_ENVELOPE: COSIGN_ATTESTATION,
        NOTATION_ARTIFACT: NOTATION_SIGNATURE,
    }
    for entry in await referrers_of(repository, digest):
        referred = kinds.get(str(entry.get("artifactType")))
        if referred is None or len(found) >= MAX_MANIFESTS:
            continue
        body = await manifest_of(repository, str(entry["digest"]))
        if body is not None:
            found.append(Found(referred, "referrer", body[0][1], json_object(body[1])))
    return found


class SignatureStatuses:
    """Statuses of an image's signatures; judgements remembered per (repository, policy
    version, signature manifest, image)."""

    def __init__(self, checker: Callable[[], SignatureChecker]) -> None:
        self._checker = checker
        self._judged: BoundedCache[tuple[str, str, str, str], list[SignatureStatus]] = BoundedCache(
            4096, max_age=REMEMBERED_SECONDS
        )

    async def of(
        self, repository: Repository, record: ManifestRecord, policy: SignaturePolicy | None
    ) -> list[SignatureStatus]:
        statuses: list[SignatureStatus] = []
        for found in await signature_manifests(repository, record.digest):
            layers = _layers(found)
            if policy is None or policy.mode == "off":
                reason = (
                    "no signature policy on this repository"
                    if policy is None
                    else f"the signature policy on {policy.scope} is off"
                )
                statuses += [
                    SignatureStatus(
                        found.kind, found.found_as, found.digest, n, NOT_CHECKED, reason
                    )
                    for n in range(1, len(layers) + 1)
                ]
                continue
            key = (repository.name, policy.version, found.digest, record.digest)
            judged = self._judged.get(key)
            if judged is None:
                verdicts = await self._checker().judge_layers(
                    repository, record, policy, found.kind, layers
                )
                judged = [
                    SignatureStatus(found.kind, found.found_as, found.digest, n, state, detail)
                    for n, (state, detail) in enumerate(verdicts, 1)
                ]
                self._judged.put(key, judged)
            statuses += judged
        return statuses
