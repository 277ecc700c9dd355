"""cosign signatures in a registry: storing one (`sign`) and finding and checking them all
(`verify`), in cosign's key-based format (`dockyard.core.cosign`).

Signatures are kept where cosign keeps them: as layers of the image under the tag
`sha256-<hex>.sig`, one layer per signature, and (on request) each as an OCI 1.1 referrer whose
subject is the signed manifest (`client/cosign_images.py`, which also says what protects the tag
from signers writing at once).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from dockyard.client import cosign_images, referrers
from dockyard.client.errors import ClientError, NotFound, Unauthorized
from dockyard.client.image import Manifest
from dockyard.client.registry import RegistryClient
from dockyard.client.transfer import child_descriptors
from dockyard.core import cosign, keys, sigstore
from dockyard.core.manifest import Descriptor
from dockyard.core.reference import ImageReference

DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
SIGNATURE_TYPES = frozenset({cosign.SIMPLESIGNING, cosign.COSIGN_ARTIFACT_SIG})


@dataclass(frozen=True)
class Signed:
    """What `sign` stored: the signed digest, and where the signature now lives."""

    repository: str
    digest: str
    tag: str
    tag_manifest: str
    referrer: str | None
    payload: bytes


def _holds(layers: Sequence[dict[str, Any]], *, entry: dict[str, Any]) -> bool:
    signature = entry["annotations"][cosign.SIGNATURE_ANNOTATION]
    return any(
        known.get("digest") == entry["digest"]
        and (known.get("annotations") or {}).get(cosign.SIGNATURE_ANNOTATION) == signature
        for known in layers
    )


async def sign(
    registry: RegistryClient,
    ref: ImageReference,
    subject: Descriptor,
    private_key: keys.PrivateKey,
    *,
    as_referrer: bool = False,
) -> Signed:
    """Sign `subject` (the manifest `ref` resolved to) in `ref`'s repository."""
    if not DIGEST.fullmatch(subject.digest):
        raise ClientError(f"{ref}: cosign signatures name sha256 digests, not {subject.digest}")
    payload = cosign.payload(ref.name, subject.digest)
    entry = cosign.layer(payload, keys.sign(private_key, payload))
    await cosign_images.put_blob(registry, ref.repository, payload, cosign.SIMPLESIGNING)
    tag_manifest = await cosign_images.append_layer(
        registry,
        ref.repository,
        cosign.signature_tag(subject.digest),
        entry,
        holds=partial(_holds, entry=entry),
        limit=cosign.MAX_SIGNATURE_LAYERS,
        kind="signature",
    )
    referrer = None
    if as_referrer:
        referrer = await cosign_images.push_referrer(
            registry, ref.repository, subject, entry, cosign.SIMPLESIGNING
        )
    return Signed(
        ref.repository,
        subject.digest,
        cosign.signature_tag(subject.digest),
        tag_manifest,
        referrer,
        payload,
    )


# -- verifying --------------------------------------------------------------------------------


@dataclass
class Finding:
    """One signature layer found for an image, and what became of it."""

    where: str
    layer: str
    verdict: cosign.Verdict | None = None
    problem: str | None = None

    @property
    def valid(self) -> bool:
        return self.verdict is not None and self.verdict.valid

    def message(self) -> str:
        if self.verdict is None:
            return f"{self.where}, layer {self.layer}: {self.problem}"
        verdict = self.verdict
        if verdict.valid:
            return f"{self.where}, layer {self.layer}: valid, signed by {verdict.key_name}"
        text = verdict.failure.value if verdict.failure else "?"
        if verdict.detail:
            text += f" ({verdict.detail})"
        if verdict.failure is cosign.Failure.OTHER_DIGEST and verdict.claims:
            text += f": it names {verdict.claims.manifest_digest}"
        elif verdict.failure is cosign.Failure.OTHER_REPOSITORY and verdict.claims:
            text += f": it names {verdict.claims.docker_reference}"
        return f"{self.where}, layer {self.layer}: {_printable(text)}"


def _printable(text: str) -> str:
    """What a registry or signer wrote, with no terminal control sequences."""
    return "".join(ch if ch.isprintable() else "?" for ch in text[:300])


@dataclass
class ImageVerification:
    """The signatures found for one manifest digest, each judged."""

    repository: str
    digest: str
    platform: str | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return any(finding.valid for finding in self.findings)

    @property
    def matched_keys(self) -> list[str]:
        names = (f.verdict.key_name for f in self.findings if f.valid and f.verdict)
        return list(dict.fromkeys(name for name in names if name))


@dataclass
class Verification:
    """`verify`'s answer: valid only when every image checked has a valid signature."""

    reference: str
    images: list[ImageVerification]

    @property
    def valid(self) -> bool:
        return bool(self.images) and all(image.valid for image in self.images)


async def _signature_manifests(
    registry: RegistryClient, repo: str, digest: str
) -> list[tuple[str, Manifest | None, str | None]]:
    """(where, manifest or None, problem) for the `.sig` tag and each signature referrer."""
    found: list[tuple[str, Manifest | None, str | None]] = []
    tag = cosign.signature_tag(digest)
    tagged = await cosign_images.read(registry, repo, tag)
    if tagged is not None:
        found.append((f"tag {tag}", tagged, None))
    try:
        listed = await referrers.list_referrers(registry, repo, digest)
    except NotFound:
        listed = []
    except ClientError as exc:
        # A broken referrers listing hides nothing the .sig tag holds.
        if isinstance(exc, Unauthorized):
            raise
        found.append(("the referrers of the image", None, f"cannot list them: {exc}"))
        listed = []
    for entry in listed:
        child = str(entry.get("digest", ""))
        if entry.get("artifactType") not in SIGNATURE_TYPES or not DIGEST.fullmatch(child):
            continue
        where = f"referrer {child}"
        try:
            found.append((where, await registry.get_manifest(repo, child), None))
        except ClientError as exc:
            found.append((where, None, f"cannot read it: {exc}"))
    return found


async def _payload(registry: RegistryClient, repo: str, entry: dict[str, Any]) -> bytes | str:
    """The layer's blob, the exact bytes that were signed; or why it cannot be had."""
    digest, size = entry.get("digest"), entry.get("size")
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        return "the layer names no sha256 digest"
    if not isinstance(size, int) or not 0 < size <= cosign.MAX_PAYLOAD_BYTES:
        return f"the layer's size {size!r} is not that of a payload (at most 64 KiB)"
    parts = []
    try:
        async for piece in registry.open_blob(repo, digest):
            parts.append(piece)
            if sum(map(len, parts)) > size:
                return "the payload blob is larger than its descriptor says"
    except ClientError as exc:
        return f"cannot read the payload: {exc}"
    data = b"".join(parts)
    return data if len(data) == size else "the payload blob is not the size its descriptor says"


async def verify_digest(
    registry: RegistryClient,
    repo: str,
    digest: str,
    trusted: Sequence[tuple[str, keys.PublicKey]],
    identity: str,
    keyless: sigstore.Trust | None = None,
) -> ImageVerification:
    """Judge every signature of `digest` found by the tag scheme and the referrers API."""
    result = ImageVerification(repo, digest)
    seen: set[tuple[str, str]] = set()
    for where, manifest, problem in await _signature_manifests(registry, repo, digest):
        if manifest is None:
            result.findings.append(Finding(where, "-", problem=problem))
            continue
        try:
            layers = cosign.signature_layers(manifest.json())
        except ValueError:
            layers = []
        if not layers:
            result.findings.append(Finding(where, "-", problem="holds no simple-signing layer"))
        for entry in layers:
            annotations = entry.get("annotations") or {}
            signature = str(annotations.get(cosign.SIGNATURE_ANNOTATION, ""))
            key = (str(entry.get("digest")), signature)
            if key in seen:  # the same signature, stored both ways
                continue
            seen.add(key)
            layer_name = _printable(str(entry.get("digest", "?")))
            payload = await _payload(registry, repo, entry)
            if isinstance(payload, str):
                result.findings.append(Finding(where, layer_name, problem=payload))
                continue
            verdict = cosign.judge(payload, annotations, trusted, digest, identity, keyless)
            result.findings.append(Finding(where, layer_name, verdict))
    return result


async def verify(
    registry: RegistryClient,
    ref: ImageReference,
    top: Manifest,
    trusted: Sequence[tuple[str, keys.PublicKey]],
    *,
    all_platforms: bool = False,
    identity: str | None = None,
    keyless: sigstore.Trust | None = None,
) -> Verification:
    """Verify `top` (the manifest `ref` names); with `all_platforms` and an index, also every
    image the index lists: each must carry a valid signature. `keyless` also accepts
    certificates chaining to its roots (and, with Rekor keys, requires Rekor bundles)."""
    if not trusted and (keyless is None or not keyless.roots):
        raise ClientError("name at least one public key or certificate root to verify with")
    wanted = identity or ref.name
    images = [await verify_digest(registry, ref.repository, top.digest, trusted, wanted, keyless)]
    if all_platforms and top.is_index:
        for entry in child_descriptors(top):
            child = str(entry["digest"])
            if not DIGEST.fullmatch(child):
                raise ClientError(f"{ref}: the index lists {_printable(child)}, not a digest")
            image = await verify_digest(registry, ref.repository, child, trusted, wanted, keyless)
            platform = entry.get("platform")
            if isinstance(platform, dict):
                image.platform = _printable(
                    "/".join(
                        str(platform[k]) for k in ("os", "architecture", "variant") if k in platform
                    )
                )
            images.append(image)
    return Verification(str(ref), images)
