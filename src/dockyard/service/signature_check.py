"""Whether a manifest of a repository under a signature policy is signed, found by the same
checks `dockyard verify` makes (`dockyard.core.cosign.judge`,
`dockyard.core.notation.verify_notation`) over what the repository itself holds.

A manifest is served when the repository holds a valid signature of its digest: a cosign
signature under the tag `sha256-<hex>.sig` or as a referrer, by one of the policy's keys, naming
this repository; or a notation signature referrer chaining to one of the policy's roots. Or
when an index of the repository that lists it is itself signed so. Signatures, attestations
and other referrers are always served: clients need them to verify.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509

from dockyard.core import cosign, dsse, keys
from dockyard.core import mediatypes as mt
from dockyard.core.bounded_cache import BoundedCache
from dockyard.core.in_toto import check_statement
from dockyard.core.manifest import Descriptor
from dockyard.core.notation import ARTIFACT_TYPE as NOTATION_SIGNATURE
from dockyard.core.notation import verify_notation
from dockyard.core.notation_envelope import ENVELOPE_TYPES, MAX_ENVELOPE_BYTES
from dockyard.core.reference import InvalidReference, parse_reference
from dockyard.core.signature_failure import Failure, SignatureRefused
from dockyard.metadata.base import ManifestRecord, SignaturePolicy
from dockyard.service.signature_sources import (
    blob_of,
    json_object,
    manifest_of,
    record_of,
    referrers_of,
)
from dockyard.service.signature_status import COSIGN_ATTESTATION, COSIGN_SIGNATURE
from dockyard.service.signature_status import NOTATION_SIGNATURE as NOTATION_KIND

if TYPE_CHECKING:
    from dockyard.service.repository import Repository

# Tags cosign keeps signatures, attestations and SBOMs under.
ARTIFACT_TAG = re.compile(r"sha256-[0-9a-f]{64}\.(sig|att|sbom)")
# Layers of the manifests cosign and notation store signatures, attestations and SBOMs in: a
# manifest made of nothing else is such an artifact, never a runnable image.
ARTIFACT_LAYERS = frozenset(
    {
        cosign.SIMPLESIGNING,
        dsse.ENVELOPE_TYPE,
        *ENVELOPE_TYPES,
        "text/spdx",
        "text/spdx+json",
        "text/spdx+xml",
        "application/vnd.cyclonedx",
        "application/vnd.cyclonedx+json",
        "application/vnd.cyclonedx+xml",
        "application/vnd.syft+json",
    }
)
COSIGN_SIGNATURES = frozenset({cosign.SIMPLESIGNING, cosign.COSIGN_ARTIFACT_SIG})
# Signature manifests examined per digest, and indexes tried for a child: a repository full of
# junk referrers costs a bounded amount of work per pull.
MAX_CANDIDATES = 64
MAX_PARENTS = 16


# What a positive result rests on: (reference, manifest digest) pairs that must all still
# resolve so, e.g. ("sha256-<hex>.sig", the signature manifest's digest) or a referrer's digest
# twice. Checked against the metadata store on every remembered pull, so that a removed
# signature stops counting at once on every worker and replica.
Evidence = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Signers:
    """A policy's keys and roots, read once per policy version."""

    keys: list[tuple[str, keys.PublicKey]]
    roots: list[x509.Certificate]


def _signers(policy: SignaturePolicy) -> Signers:
    loaded = []
    for text in policy.public_keys:
        key = keys.load_public_key(text.encode())
        loaded.append((keys.fingerprint(key), key))
    roots = [x509.load_pem_x509_certificate(text.encode()) for text in policy.roots]
    return Signers(loaded, roots)


def _key_named(signers: Signers, fingerprint: str | None) -> str:
    """A policy key by its place in the policy and its fingerprint."""
    for number, (name, _) in enumerate(signers.keys, 1):
        if name == fingerprint:
            return f"policy key {number} ({name})"
    return f"key {fingerprint}"


class SignatureChecker:
    """The checks themselves, for `dockyard.service.signature_gate`, which loads this module
    (and with it the cryptography) only once a policy asks for a check."""

    def __init__(self, remember: Callable[[tuple[str, str, str], Evidence], None]) -> None:
        self._remember = remember
        self._signers: BoundedCache[str, Signers] = BoundedCache(256)

    async def is_artifact(
        self, repository: Repository, reference: str, record: ManifestRecord
    ) -> bool:
        """Signatures, attestations, SBOMs and other referrers: served whatever the policy."""
        if record.subject is not None or ARTIFACT_TAG.fullmatch(reference):
            return True
        if record.media_type in mt.INDEXES:
            return False
        layers = json_object(await repository.manifests.content(record)).get("layers")
        if not isinstance(layers, list) or not layers:
            return False
        return all(
            isinstance(layer, dict) and layer.get("mediaType") in ARTIFACT_LAYERS
            for layer in layers
        )

    async def signed(
        self, repository: Repository, record: ManifestRecord, policy: SignaturePolicy
    ) -> bool:
        """Whether the manifest, or an index of the repository listing it, is signed."""
        evidence = await self._signed(repository, record, policy)
        if evidence is not None:
            self._remember((repository.name, record.digest, policy.version), evidence)
            return True
        if record.media_type in mt.INDEXES:
            return False
        for parent in (await repository.manifests.parents(record.digest))[:MAX_PARENTS]:
            evidence = await self._signed(repository, parent, policy)
            if evidence is not None:
                # The index must stay here too: its signature covers the child only through it.
                evidence = ((parent.digest, parent.digest), *evidence)
                self._remember((repository.name, record.digest, policy.version), evidence)
                return True
        return False

    def signers_of(self, policy: SignaturePolicy) -> Signers:
        """The policy's keys (named by fingerprint, in its order) and roots, read once."""
        signers = self._signers.get(policy.version)
        if signers is None:
            signers = _signers(policy)
            self._signers.put(policy.version, signers)
        return signers

    async def judge_layers(
        self,
        repository: Repository,
        record: ManifestRecord,
        policy: SignaturePolicy,
        kind: str,
        layers: Sequence[dict[str, Any]],
    ) -> list[tuple[str, str]]:
        """("valid", which key or root) or ("invalid", why) for each signature layer of a
        signature manifest of `record`, of `kind` (see `dockyard.service.signature_status`)."""
        signers = self.signers_of(policy)
        judged = []
        for layer in layers:
            try:
                judged.append(
                    ("valid", await self._judge(repository, record, signers, kind, layer))
                )
            except SignatureRefused as exc:
                judged.append(("invalid", str(exc)))
        return judged

    async def _judge(
        self,
        repository: Repository,
        record: ManifestRecord,
        signers: Signers,
        kind: str,
        layer: dict[str, Any],
    ) -> str:
        """Which policy key or root the layer is a valid signature of `record` by."""
        if kind == NOTATION_KIND and not signers.roots:
            raise SignatureRefused(Failure.UNTRUSTED_ROOT, "the policy names no notation roots")
        if kind != NOTATION_KIND and not signers.keys:
            raise SignatureRefused(Failure.BAD_SIGNATURE, "the policy names no keys")
        size = layer.get("size")
        limit = cosign.MAX_PAYLOAD_BYTES if kind == COSIGN_SIGNATURE else MAX_ENVELOPE_BYTES
        if not isinstance(size, int) or not 0 < size <= limit:
            raise SignatureRefused(Failure.MALFORMED, "the layer's size is missing or too large")
        data = await blob_of(repository, str(layer.get("digest")), size)
        if data is None:
            raise SignatureRefused(Failure.MALFORMED, "the layer's blob is not in the registry")
        if kind == COSIGN_SIGNATURE:
            identity = signed_identity(data, await repository.signed_as())
            verdict = cosign.judge(
                data, layer.get("annotations"), signers.keys, record.digest, identity
            )
            if verdict.failure is not None:
                raise SignatureRefused(Failure.BAD_SIGNATURE, verdict.failure.value)
            return _key_named(signers, verdict.key_name)
        if kind == COSIGN_ATTESTATION:
            opened = dsse.open_envelope(data, signers.keys)
            check_statement(opened.payload, record.digest, None)
            return _key_named(signers, opened.key_name)
        subject = Descriptor(record.media_type, record.digest, record.size)
        try:
            found = verify_notation(str(layer.get("mediaType")), data, subject, signers.roots)
        except SignatureRefused:
            raise
        except ValueError as exc:
            raise SignatureRefused(Failure.MALFORMED, str(exc)) from None
        return f"notation root {found.root} (signed by {found.signer})"

    async def still_holds(self, repository: Repository, evidence: Evidence) -> bool:
        """Whether every reference a remembered result rests on still resolves to the same
        manifest in the repository."""
        for reference, digest in evidence:
            found = await record_of(repository, reference)
            if found is None or found.digest != digest:
                return False
        return True

    async def _signed(
        self, repository: Repository, record: ManifestRecord, policy: SignaturePolicy
    ) -> Evidence | None:
        signers = self.signers_of(policy)
        found: Evidence | None = None
        if signers.keys:
            found = await self._cosign_signed(repository, record.digest, signers.keys)
        if found is None and signers.roots:
            found = await self._notation_signed(repository, record, signers.roots)
        return found

    async def _cosign_signed(
        self, repository: Repository, digest: str, trusted: Sequence[tuple[str, keys.PublicKey]]
    ) -> Evidence | None:
        bodies = []
        tagged = await manifest_of(repository, cosign.signature_tag(digest))
        if tagged is not None:
            bodies.append(tagged)
        for entry in (await referrers_of(repository, digest))[:MAX_CANDIDATES]:
            if entry.get("artifactType") in COSIGN_SIGNATURES:
                found = await manifest_of(repository, str(entry["digest"]))
                if found is not None:
                    bodies.append(found)
        identity = await repository.signed_as()
        for found_by, body in bodies:
            for layer in cosign.signature_layers(json_object(body))[:MAX_CANDIDATES]:
                size = layer.get("size")
                if not isinstance(size, int) or not 0 < size <= cosign.MAX_PAYLOAD_BYTES:
                    continue
                payload = await blob_of(repository, str(layer.get("digest")), size)
                if payload is None:
                    continue
                verdict = cosign.judge(
                    payload,
                    layer.get("annotations"),
                    trusted,
                    digest,
                    signed_identity(payload, identity),
                )
                if verdict.valid:
                    return (found_by,)
        return None

    async def _notation_signed(
        self, repository: Repository, record: ManifestRecord, roots: Sequence[x509.Certificate]
    ) -> Evidence | None:
        subject = Descriptor(record.media_type, record.digest, record.size)
        for entry in (await referrers_of(repository, record.digest))[:MAX_CANDIDATES]:
            if entry.get("artifactType") != NOTATION_SIGNATURE:
                continue
            found = await manifest_of(repository, str(entry["digest"]))
            if found is None:
                continue
            found_by, body = found
            document = json_object(body)
            named = document.get("subject")
            layers = document.get("layers")
            if (
                not isinstance(named, dict)
                or named.get("digest") != record.digest
                or not isinstance(layers, list)
                or len(layers) != 1
                or not isinstance(layers[0], dict)
            ):
                continue
            media_type, size = layers[0].get("mediaType"), layers[0].get("size")
            if media_type not in ENVELOPE_TYPES or not isinstance(size, int):
                continue
            if not 0 < size <= MAX_ENVELOPE_BYTES:
                continue
            envelope = await blob_of(repository, str(layers[0].get("digest")), size)
            if envelope is None:
                continue
            try:
                verify_notation(str(media_type), envelope, subject, roots)
            except (SignatureRefused, ValueError):
                continue
            return (found_by,)
        return None


def signed_identity(payload: bytes, path: str) -> str:
    """The repository a payload must name, on the registry host it names: clients reach this
    registry under names it cannot know (its address, a proxy's, a mirror's), so only the
    repository path is compared."""
    claims = cosign.read_payload(payload)
    if claims is None:
        return path
    try:
        signed = parse_reference(claims.docker_reference, default_tag=None)
    except InvalidReference:
        return path
    return f"{signed.registry}/{path}"
