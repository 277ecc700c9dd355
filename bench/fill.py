"""Growth set-up through the metadata store's own interface, not HTTP: a million tag PUTs would
take hours over HTTP and time the pushes, not the store the listings then read.

The records name one real image (`Seed`), pushed over HTTP first, so every manifest and blob
they name is in the blob store and a client pulling any of the tags gets it. Tags go in with
`put_manifest`'s list of tags, `batch` of them a transaction (the bulk form the store offers);
repositories one `put_manifest` each, `concurrency` at a time, so the store's group commit
shares their commits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from bench.ops import OCI_MANIFEST, SmallImage, sha256
from dockyard.metadata.base import ManifestRecord, Reference
from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.registry import METADATA_FILE

TAG_REPOSITORY = "scale/tags"
# Kept at the smallest size while TAG_REPOSITORY grows: each size is timed against it in turns.
REFERENCE_REPOSITORY = "scale/tags-reference"
REWRITES = 20  # attempts at one repository's write before the fill gives up
REPOSITORY_PREFIX = "scale/r/"


def tag_name(index: int) -> str:
    """Tags sort in the order of their index: the middle index is the middle of the list."""
    return f"t-{index:07d}"


def repository_name(index: int) -> str:
    return f"{REPOSITORY_PREFIX}{index:07d}"


@dataclass(frozen=True)
class Seed:
    """The image every filled record names (config, one layer, its OCI manifest)."""

    manifest_digest: str
    manifest_size: int
    config_digest: str
    config_size: int
    layer_digest: str
    layer_size: int

    @classmethod
    def of(cls, image: SmallImage) -> Seed:
        return cls(
            sha256(image.manifest),
            len(image.manifest),
            image.config_digest,
            len(image.config),
            image.layer_digest,
            len(image.layer),
        )

    def record(self) -> ManifestRecord:
        return ManifestRecord(self.manifest_digest, OCI_MANIFEST, self.manifest_size)

    def references(self) -> list[Reference]:
        return [Reference(self.config_digest, "blob"), Reference(self.layer_digest, "blob")]

    def links(self) -> list[tuple[str, int]]:
        return [(self.config_digest, self.config_size), (self.layer_digest, self.layer_size)]


def open_sqlite(data_dir: Path) -> SQLMetadataStore:
    """The store of a `dockyard serve --data-dir DATA_DIR` (serving or not: writers take
    turns through the store's own lock)."""
    return SQLMetadataStore.open_sqlite(data_dir / METADATA_FILE)


def open_postgres(url: str) -> SQLMetadataStore:
    """The store of a `dockyard serve --metadata URL` (which migrated it when it started)."""
    return SQLMetadataStore.open_postgres(url)


async def add_tags(
    meta: SQLMetadataStore,
    seed: Seed,
    start: int,
    stop: int,
    batch: int,
    repository: str = TAG_REPOSITORY,
) -> None:
    """Tags `tag_name(start)` .. `tag_name(stop - 1)` of `repository` on the seed's manifest,
    `batch` a transaction."""
    for low in range(start, stop, batch):
        names = [tag_name(i) for i in range(low, min(stop, low + batch))]
        await meta.put_manifest(
            repository, seed.record(), seed.references(), names, links=seed.links()
        )


async def add_repositories(
    meta: SQLMetadataStore, seed: Seed, start: int, stop: int, concurrency: int
) -> int:
    """Repositories `repository_name(start)` .. `(stop - 1)`, each holding the seed as
    `latest`; `concurrency` writes in flight, so commits are shared. Returns how many writes
    had to be made again: on PostgreSQL, new repositories written at once conflict on the
    namespace's count of links to the seed's blobs, and a write whose own retries ran out
    is made again here (it is idempotent: the same records again)."""
    todo = iter(range(start, stop))
    again = 0

    async def worker() -> None:
        nonlocal again
        for index in todo:
            for attempt in range(REWRITES):
                try:
                    await meta.put_manifest(
                        repository_name(index),
                        seed.record(),
                        seed.references(),
                        ["latest"],
                        links=seed.links(),
                    )
                    break
                except DBAPIError:
                    if attempt == REWRITES - 1:
                        raise
                    again += 1
                    await asyncio.sleep(0.01)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return again


async def tag_count(meta: SQLMetadataStore, repository: str = TAG_REPOSITORY) -> int:
    return len(await meta.list_tags(repository, None, None))


async def repository_count(meta: SQLMetadataStore) -> int:
    return len(await meta.list_repositories(None, None))
