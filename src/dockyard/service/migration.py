"""Moving a registry to other backends: every blob, then every metadata row, without loss.

Blobs are copied first (the target verifies nothing new is missing: each is re-hashed while it
streams), then the metadata tables in dependency order with their keys preserved, in one
transaction on the target. The source is only read; run it with writes stopped (`--read-only`)
and point the new replicas at the target once it finishes.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from dockyard.core.digest import Digest
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.base import Transfer
from dockyard.storage.base import BlobStore

log = logging.getLogger("dockyard.migration")


@dataclass
class MigrationReport:
    blobs_copied: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    rows: dict[str, int] | None = None


async def _verified(stream: AsyncIterator[bytes], digest: str) -> AsyncIterator[bytes]:
    parsed = Digest.parse(digest)
    hasher = hashlib.new(parsed.algorithm)
    async for chunk in stream:
        hasher.update(chunk)
        yield chunk
    if hasher.hexdigest() != parsed.hex:
        raise RegistryError(ErrorCode.DIGEST_INVALID, f"{digest} is corrupt in the source")


async def copy_blobs(
    source: BlobStore,
    target: BlobStore,
    digests: list[str],
    progress: Callable[[str, int], None] | None = None,
) -> MigrationReport:
    report = MigrationReport()
    for digest in digests:
        size = await source.stat(digest)
        if size is None:
            raise RegistryError(
                ErrorCode.BLOB_UNKNOWN,
                f"{digest} is recorded but missing "
                "from the source store; nothing was migrated past it",
            )
        if await target.stat(digest) == size:
            report.blobs_present += 1
            continue
        upload = uuid.uuid4().hex
        await target.create_upload(upload)
        written = await target.write_upload(upload, 0, _verified(source.read(digest), digest))
        await target.commit_upload(upload, digest)
        report.blobs_copied += 1
        report.bytes_copied += written
        if progress:
            progress(digest, written)
    return report


async def copy_metadata(source: Transfer, target: Transfer) -> dict[str, int]:
    """Every row of every table, keys kept; refuses a target that already holds data."""
    return await target.import_rows(await source.export_rows())
