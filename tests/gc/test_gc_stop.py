"""A stopping server's collector finishes the batch in progress and starts no other: every
queued digest is then either collected (record, bytes and queue row gone) or untouched."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from dockyard.assembly import open_registry
from dockyard.config import Settings

BLOBS = 1500


async def stop_in_the_middle(settings: Settings) -> tuple[int, int, int, bool]:
    async with open_registry(settings, create=True) as registry:
        digests = []
        for _ in range(BLOBS):
            data = os.urandom(64)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            await registry.blob_store.put(digest, data)
            digests.append(digest)
        # Bytes nothing records, queued: what a collector killed mid-batch leaves behind.
        await registry.meta.enqueue_for_review(digests)
        gc = registry.gc
        round_ = asyncio.create_task(gc.collect(paced=True))
        while not gc.in_batch:
            assert not round_.done(), "the round ended before a batch was seen"
            await asyncio.sleep(0)
        stopped = await gc.stop(30)
        report = await round_  # the round ends by itself, after the batch in progress
        left = [d for d in digests if await registry.blob_store.stat(d) is not None]
        queued = await registry.meta.review_queue_length()
        return len(left), queued, report.strays, stopped


def test_stop_lets_the_batch_in_progress_finish_and_starts_no_other(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", gc_grace_seconds=0)
    left, queued, collected, stopped = asyncio.run(stop_in_the_middle(settings))
    assert stopped
    assert 0 < collected < BLOBS  # stopped after a batch, before the last one
    assert left == BLOBS - collected
    assert queued == left  # nothing half done: each digest gone entirely or still queued
