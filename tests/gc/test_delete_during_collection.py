"""A manifest DELETE on one replica while the collector of another decides, on PostgreSQL: the
two may write the same rows (once the catalog's version; the namespace's usage), so run side by
side under SERIALIZABLE one of them is rolled back. The delete waits for the collector's batch
instead (both under the content lock); and a write whose conflicts outlast its attempts answers
a retryable UNAVAILABLE, never an unknown error."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.base import ManifestRecord
from dockyard.metadata.collection import collect_blobs
from dockyard.metadata.postgres_runner import ATTEMPTS, PostgresRunner
from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.manifests import ManifestService
from dockyard.service.registry import migrate
from dockyard.storage.filesystem import FilesystemBlobStore
from tests.support.postgres import PostgresCluster

IMAGE = "sha256:" + "ab" * 32
IMAGE_TYPE = "application/vnd.oci.image.manifest.v1+json"
# More collector batches back to back than a write has attempts: a delete that ran alongside
# each of them could run out.
ROUNDS = ATTEMPTS + 1
HOLD = 0.15  # how long each batch's deciding transaction stays open


def loose(n: int) -> str:
    return f"sha256:{n:064x}"


def _runner(meta: SQLMetadataStore) -> PostgresRunner:
    runner = meta.runner
    assert isinstance(runner, PostgresRunner)
    return runner


def test_a_manifest_delete_waits_for_the_collectors_batches_instead_of_conflicting(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = pg_cluster.create_database()

    async def main() -> None:
        deleting = SQLMetadataStore.open_postgres(url)  # replica A serves the DELETE
        collecting = SQLMetadataStore.open_postgres(url)  # replica B collects
        await migrate(deleting)
        try:
            # The only content of its repository: deleting it moves the catalog on.
            record = ManifestRecord(digest=IMAGE, media_type=IMAGE_TYPE, size=100, subject=None)
            await deleting.put_manifest("del/app", record, [], ["v1"])
            # One repository per batch, holding nothing but a link the batch drops: each
            # batch moves the catalog on too.
            for n in range(ROUNDS):
                await deleting.link_blob(f"gone/r{n}", loose(n + 1), 5)
            cutoff = time.time() + 1
            lock = collecting.shared_content_lock()
            assert lock is not None
            engine = _runner(collecting).engine
            first_open = asyncio.Event()
            emptied: list[int] = []

            async def collector() -> None:
                # What GarbageCollector._queue does per batch, the transaction held a moment.
                for n in range(ROUNDS):
                    async with lock.sweeping(), engine.connect() as conn:
                        conn = await conn.execution_options(isolation_level="SERIALIZABLE")
                        async with conn.begin():
                            work = partial(
                                collect_blobs,
                                digests=[loose(n + 1)],
                                cutoff=cutoff,
                                keep=[],
                                dry_run=False,
                            )
                            emptied.append((await conn.run_sync(work)).links)
                            first_open.set()
                            await asyncio.sleep(HOLD)

            collecting_task = asyncio.create_task(collector())
            await asyncio.wait_for(first_open.wait(), 30)
            service = ManifestService(
                FilesystemBlobStore(tmp_path / "blobs"), deleting, deleting.shared_content_lock()
            )
            await service.delete("del/app", IMAGE)
            await asyncio.wait_for(collecting_task, 60)

            assert emptied == [1] * ROUNDS, "every batch dropped its link"
            assert await deleting.get_manifest("del/app", IMAGE) is None
            assert _runner(deleting).conflicts == 0, "the delete ran between two batches"
            assert _runner(collecting).conflicts == 0
        finally:
            await deleting.close()
            await collecting.close()

    asyncio.run(main())


def test_a_write_whose_conflicts_outlast_its_attempts_answers_unavailable(
    pg_cluster: PostgresCluster,
) -> None:
    url = pg_cluster.create_database()
    calls: list[int] = []

    def always_conflicting(conn: sa.Connection) -> None:
        calls.append(1)
        # PostgreSQL's own serialization failure, as a conflicting transaction raises it.
        conn.execute(
            sa.text(
                "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure';"
                " END $$"
            )
        )

    async def main() -> None:
        meta = SQLMetadataStore.open_postgres(url)
        try:
            with pytest.raises(RegistryError) as caught:
                await meta.runner.write(always_conflicting)
        finally:
            await meta.close()
        assert caught.value.code is ErrorCode.UNAVAILABLE
        assert caught.value.headers.get("Retry-After") == "1"
        assert len(calls) == ATTEMPTS
        assert _runner(meta).conflicts == ATTEMPTS

    asyncio.run(main())
