"""Attestations in a registry: storing an in-toto statement in a DSSE envelope (`attest`), and
finding and checking an image's attestations (`verify_attestations`).

An attestation is kept both ways cosign and OCI 1.1 clients look for it: as a layer of the image
under the tag `sha256-<hex>.att` (appended, never replacing the attestations already there), and
as its own referrer of the image, artifact type `application/vnd.dsse.envelope.v1+json`
(`client/cosign_images.py`, shared with signatures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from dockyard.client import cosign_images, referrers
from dockyard.client.errors import ClientError
from dockyard.client.image import Manifest
from dockyard.client.registry import RegistryClient
from dockyard.core import dsse, in_toto, keys, sigstore, sigstore_bundle
from dockyard.core.cosign_attestation import (
    MAX_ATTESTATION_LAYERS,
    attestation_layers,
    attestation_tag,
    layer,
)
from dockyard.core.manifest import Descriptor
from dockyard.core.reference import ImageReference
from dockyard.core.signature_failure import Failure, SignatureRefused

DIGEST = referrers.DIGEST


@dataclass(frozen=True)
class Attested:
    """What `attest` stored: the image's digest and where the attestation now lives."""

    digest: str
    predicate_type: str
    tag: str
    tag_manifest: str
    referrer: str


def _holds(layers: Sequence[dict[str, Any]], *, entry: dict[str, Any]) -> bool:
    return any(known.get("digest") == entry["digest"] for known in layers)


async def attest(
    registry: RegistryClient,
    ref: ImageReference,
    subject: Descriptor,
    private_key: keys.PrivateKey,
    predicate_type: str,
    predicate: Any,
) -> Attested:
    """Sign an in-toto statement that `subject` (the manifest `ref` resolved to) has
    `predicate`, and store it under the `.att` tag and as a referrer."""
    if not DIGEST.fullmatch(subject.digest):
        raise ClientError(f"{ref}: the image's digest {subject.digest} is not a valid digest")
    payload = in_toto.statement(ref.name, subject.digest, predicate_type, predicate)
    envelope = dsse.seal(private_key, dsse.IN_TOTO, payload)
    entry = layer(envelope, predicate_type)
    await cosign_images.put_blob(registry, ref.repository, envelope, dsse.ENVELOPE_TYPE)
    tag_manifest = await cosign_images.append_layer(
        registry,
        ref.repository,
        attestation_tag(subject.digest),
        entry,
        holds=partial(_holds, entry=entry),
        limit=MAX_ATTESTATION_LAYERS,
        kind="attestation",
    )
    referrer = await cosign_images.push_referrer(
        registry, ref.repository, subject, entry, dsse.ENVELOPE_TYPE
    )
    return Attested(
        subject.digest, predicate_type, attestation_tag(subject.digest), tag_manifest, referrer
    )


# -- verifying --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """One attestation layer found, and what became of it."""

    where: str
    layer: str
    key_name: str | None = None
    predicate_type: str | None = None
    failure: Failure | None = None
    reason: str | None = None

    @property
    def valid(self) -> bool:
        return self.failure is None


@dataclass
class AttestationReport:
    """Every attestation found for the image; valid when at least one holds."""

    subject: Descriptor
    checked: list[Checked] = field(default_factory=list)

    @property
    def valid(self) -> list[Checked]:
        return [item for item in self.checked if item.valid]

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.subject.digest,
            "verified": bool(self.valid),
            "attestations": [
                {
                    "where": item.where,
                    "layer": item.layer,
                    "valid": item.valid,
                    "key": item.key_name,
                    "predicateType": item.predicate_type,
                    "failure": item.failure.value if item.failure else None,
                    "reason": item.reason,
                }
                for item in self.checked
            ],
        }


class NotAttested(ClientError):
    """No attestation of the image holds; `report` says what was found and why each failed."""

    def __init__(self, message: str, report: AttestationReport) -> None:
        super().__init__(message)
        self.report = report


async def _envelope(
    registry: RegistryClient, repo: str, entry: dict[str, Any], limit: int = dsse.MAX_ENVELOPE_BYTES
) -> bytes:
    digest, size = entry.get("digest"), entry.get("size")
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        raise SignatureRefused(Failure.MALFORMED, "the layer names no valid digest")
    if not isinstance(size, int) or not 0 < size <= limit:
        raise SignatureRefused(Failure.MALFORMED, f"the layer's size {size!r} is out of bounds")
    pieces, received = [], 0
    async for piece in registry.open_blob(repo, digest):
        received += len(piece)
        if received > size:
            raise SignatureRefused(Failure.MALFORMED, "the envelope is larger than its layer says")
        pieces.append(piece)
    return b"".join(pieces)


async def _attestation_images(
    registry: RegistryClient, repo: str, digest: str
) -> list[tuple[str, Manifest]]:
    found = []
    tag = attestation_tag(digest)
    tagged = await cosign_images.read(registry, repo, tag)
    if tagged is not None:
        found.append((f"tag {tag}", tagged))
    for entry in await referrers.list_referrers(registry, repo, digest, dsse.ENVELOPE_TYPE):
        child = str(entry.get("digest", ""))
        if DIGEST.fullmatch(child):
            manifest = await cosign_images.read(registry, repo, child)
            if manifest is not None:
                found.append((f"referrer {child}", manifest))
    return found


async def _check_bundles(
    registry: RegistryClient,
    repo: str,
    subject: Descriptor,
    trust: sigstore.Trust,
    predicate_type: str | None,
    report: AttestationReport,
) -> None:
    """Check the sigstore bundles stored as referrers of `subject` (cosign's
    `--new-bundle-format`): each bundle layer verified offline against `trust`."""
    listed = await referrers.list_referrers(
        registry, repo, subject.digest, sigstore_bundle.BUNDLE_V03
    )
    for listing in listed[:MAX_ATTESTATION_LAYERS]:
        child = str(listing.get("digest", ""))
        manifest = (
            await cosign_images.read(registry, repo, child) if DIGEST.fullmatch(child) else None
        )
        document = manifest.json() if manifest is not None else None
        layers = document.get("layers") if isinstance(document, dict) else None
        for entry in (layers if isinstance(layers, list) else [])[:MAX_ATTESTATION_LAYERS]:
            if not isinstance(entry, dict) or entry.get("mediaType") != sigstore_bundle.BUNDLE_V03:
                continue
            name = str(entry.get("digest", "?"))
            try:
                data = await _envelope(registry, repo, entry, sigstore_bundle.MAX_BUNDLE_BYTES)
                verified = sigstore_bundle.verify_bundle(
                    data, trust, subject.digest, predicate_type
                )
            except SignatureRefused as exc:
                report.checked.append(
                    Checked(f"bundle referrer {child}", name, failure=exc.failure, reason=str(exc))
                )
                continue
            signer = f"{verified.identity} ({verified.issuer or 'no issuer'})"
            report.checked.append(
                Checked(f"bundle referrer {child}", name, signer, verified.statement.predicate_type)
            )


async def verify_attestations(
    registry: RegistryClient,
    repo: str,
    subject: Descriptor,
    trusted: Sequence[tuple[str, keys.PublicKey]],
    predicate_type: str | None = None,
    keyless: sigstore.Trust | None = None,
) -> AttestationReport:
    """Check every attestation of `subject` (`.att` tag and referrers): the DSSE signature by
    one of `trusted`, the statement about `subject`'s digest, of `predicate_type` when given.
    With `keyless`, also the sigstore bundle referrers (Fulcio certificate, Rekor proofs,
    identity and issuer). NotAttested unless one holds."""
    if not trusted and keyless is None:
        raise ClientError("name at least one public key, or a trusted root, to verify with")
    report = AttestationReport(subject)
    if keyless is not None:
        await _check_bundles(registry, repo, subject, keyless, predicate_type, report)
    seen: set[str] = set()
    images = await _attestation_images(registry, repo, subject.digest) if trusted else []
    for where, manifest in images:
        try:
            layers = attestation_layers(manifest.json())
        except ValueError:
            layers = []
        for entry in layers:
            name = str(entry.get("digest", "?"))
            if name in seen:  # the same envelope, stored both ways
                continue
            seen.add(name)
            try:
                opened = dsse.open_envelope(await _envelope(registry, repo, entry), trusted)
                if opened.payload_type != dsse.IN_TOTO:
                    raise SignatureRefused(
                        Failure.MALFORMED,
                        f"the envelope holds {opened.payload_type}, not an in-toto statement",
                    )
                found = in_toto.check_statement(opened.payload, subject.digest, predicate_type)
            except SignatureRefused as exc:
                report.checked.append(Checked(where, name, failure=exc.failure, reason=str(exc)))
                continue
            report.checked.append(Checked(where, name, opened.key_name, found.predicate_type))
    if report.valid:
        return report
    if not report.checked:
        raise NotAttested(f"{repo}@{subject.digest} has no attestation", report)
    reasons = "; ".join(f"{item.layer}: {item.reason}" for item in report.checked)
    raise NotAttested(f"no valid attestation for {repo}@{subject.digest}: {reasons}", report)
