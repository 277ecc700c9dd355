"""The small images cosign keeps beside an image, for signatures (`.sig`) and attestations
(`.att`) alike: a tag image whose layers are the signatures, and each signature also as its own
OCI 1.1 referrer.

The tag is read-modify-write and the distribution API has no conditional PUT: before replacing
it a writer checks that it still points where it was read, and after, that its layer is in it,
and starts again (after a random pause, so writers that collided do not meet again) if not.
Two writers in the same instant can still lose one layer from the tag, as with cosign itself;
a layer also stored as a referrer is its own manifest and cannot be lost that way.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from dockyard.client import referrers
from dockyard.client.errors import ClientError, NotFound
from dockyard.client.image import Manifest
from dockyard.client.registry import RegistryClient
from dockyard.core import cosign
from dockyard.core import mediatypes as mt
from dockyard.core.manifest import Descriptor

# Rounds of read, append, write, check against other writers replacing the tag.
TAG_ATTEMPTS = 8


async def put_blob(registry: RegistryClient, repo: str, data: bytes, media_type: str) -> None:
    """Upload `data` unless the repository already has it."""
    descriptor = Descriptor(media_type, cosign.sha256(data), len(data))

    async def opener(offset: int) -> AsyncIterator[bytes]:
        yield data[offset:]

    if await registry.blob_size(repo, descriptor.digest) is None:
        await registry.upload_blob(repo, descriptor, opener)


async def read(registry: RegistryClient, repo: str, reference: str) -> Manifest | None:
    """The manifest at `reference`, or None when there is none."""
    try:
        return await registry.get_manifest(repo, reference)
    except NotFound:
        return None


def layers_of(manifest: Manifest, where: str, kind: str) -> list[dict[str, Any]]:
    """Every layer of the `kind` image ("signature", "attestation") at `where`, kept as it is
    (other tools' layers too); a tag holding anything else is refused, never overwritten."""
    try:
        document = manifest.json()
    except ValueError:
        document = None
    if (
        manifest.media_type not in mt.IMAGE_MANIFESTS
        or not isinstance(document, dict)
        or not isinstance(document.get("layers"), list)
    ):
        raise ClientError(f"{where} is not {kind} image (an image manifest with layers)")
    return [entry for entry in document["layers"] if isinstance(entry, dict)]


async def append_layer(
    registry: RegistryClient,
    repo: str,
    tag: str,
    entry: dict[str, Any],
    *,
    holds: Callable[[Sequence[dict[str, Any]]], bool],
    limit: int,
    kind: str,
) -> str:
    """Add the layer `entry` to the image at `tag` (made if missing); the image's new digest.
    `holds` says whether a list of layers already has `entry`; `kind` names it in messages."""
    where = f"{repo}:{tag}"
    article = f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"
    for attempt in range(TAG_ATTEMPTS):
        if attempt:
            await asyncio.sleep(random.uniform(0, 0.05 * attempt))
        current = await read(registry, repo, tag)
        layers = layers_of(current, where, article) if current is not None else []
        if current is not None and holds(layers):
            return current.digest
        if len(layers) >= limit:
            raise ClientError(f"{where} already holds {len(layers)} {kind}s; refusing to add")
        body, config = cosign.signature_manifest([*layers, entry])
        await put_blob(registry, repo, config, mt.OCI_CONFIG)
        # The last look before replacing: another writer's change since our read means
        # starting again from theirs, not overwriting it.
        now = await registry.head_manifest(repo, tag)
        if (now.digest if now else None) != (current.digest if current else None):
            continue
        await registry.put_manifest(repo, tag, Manifest(body, mt.OCI_MANIFEST, cosign.sha256(body)))
        stored = await read(registry, repo, tag)
        if stored is not None and holds(layers_of(stored, where, article)):
            return stored.digest
    raise ClientError(f"{where}: other writers kept replacing the tag; the {kind} was not added")


async def push_referrer(
    registry: RegistryClient,
    repo: str,
    subject: Descriptor,
    entry: dict[str, Any],
    artifact_type: str,
) -> str:
    """The layer `entry` as its own OCI 1.1 referrer of `subject`, typed `artifact_type`: in
    the referrers API, or in the referrers tag where the registry has none."""
    body, config = cosign.signature_manifest(
        [entry],
        subject={"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
        artifact_type=artifact_type,
    )
    await put_blob(registry, repo, config, mt.OCI_CONFIG)
    manifest = Manifest(body, mt.OCI_MANIFEST, cosign.sha256(body))
    if not await registry.put_referrer(repo, manifest):
        # No referrers API: list it in the referrers tag, as every OCI 1.1 client does.
        await referrers.add_to_tag(
            registry, repo, subject.digest, manifest.descriptor(artifactType=artifact_type)
        )
    return manifest.digest
