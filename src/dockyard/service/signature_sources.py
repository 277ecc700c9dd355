"""Where a repository keeps an image's signatures and attestations, read as the registry holds
them: a manifest by tag or digest, the referrers of a digest, a blob's exact bytes. Shared by the
signature gate's checks and the signature statuses of the image page; no cryptography here, so
that a page without a policy never loads it."""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.base import ManifestRecord
from dockyard.service.repository import Arriving

if TYPE_CHECKING:
    from dockyard.service.repository import Repository

DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def json_object(data: bytes) -> dict[str, Any]:
    """The JSON object in `data`; empty when it is not one."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return document if isinstance(document, dict) else {}


async def record_of(repository: Repository, reference: str) -> ManifestRecord | None:
    try:
        record, _ = await repository.manifests.get(reference)
    except RegistryError as exc:
        if exc.code in (ErrorCode.MANIFEST_UNKNOWN, ErrorCode.NAME_UNKNOWN):
            return None
        raise
    return record


async def manifest_of(
    repository: Repository, reference: str
) -> tuple[tuple[str, str], bytes] | None:
    """The manifest's bytes, with the (reference, digest) pair it was found by."""
    record = await record_of(repository, reference)
    if record is None:
        return None
    try:
        return (reference, record.digest), await repository.manifests.content(record)
    except RegistryError as exc:
        if exc.code == ErrorCode.MANIFEST_UNKNOWN:
            return None
        raise


async def referrers_of(repository: Repository, digest: str) -> list[dict[str, Any]]:
    """The referrers API's entries for `digest` whose digest is well formed."""
    listing = json_object((await repository.manifests.referrers(digest, None)).index)
    entries = listing.get("manifests")
    if not isinstance(entries, list):
        return []
    return [
        entry
        for entry in entries
        if isinstance(entry, dict) and DIGEST.fullmatch(str(entry.get("digest", "")))
    ]


async def blob_of(repository: Repository, digest: str, size: int) -> bytes | None:
    """The blob's exact bytes, when it is there and its size and digest hold."""
    if not DIGEST.fullmatch(digest):
        return None
    try:
        found = await repository.blobs.find(digest)
    except RegistryError as exc:
        if exc.code == ErrorCode.BLOB_UNKNOWN:
            return None
        raise
    if found.size != size:
        return None
    parts: list[bytes] = []
    if isinstance(found, Arriving):
        if found.stream is None:
            return None
        async for piece in found.stream:
            parts.append(piece)
    else:
        async for piece in repository.blobs.read(digest, 0, size - 1):
            parts.append(piece)
    data = b"".join(parts)
    if len(data) != size or "sha256:" + hashlib.sha256(data).hexdigest() != digest:
        return None
    return data
