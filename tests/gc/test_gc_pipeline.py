"""A turn of the content lock pipelines its batches: the records of a batch are decided while
the bytes of the batch before are removed, and the lock is never let go with a removal still
under way (a push of the same content would then publish bytes the removal takes away)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from dockyard.assembly import open_registry
from dockyard.config import Settings
from dockyard.service import gc as gc_module
from tests.gc.test_gc_pacing import BLOBS, queue_strays


def test_batches_overlap_their_removals_and_the_lock_waits_for_every_removal(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(gc_module, "LOCK_BUDGET", 60.0)  # one turn holds every batch
    settings = Settings(data_dir=tmp_path / "data", gc_grace_seconds=0)
    events: list[str] = []

    async def run() -> int:
        async with open_registry(settings, create=True) as registry:
            await queue_strays(registry)
            store, meta, lock = registry.blob_store, registry.meta, registry.gc.lock
            remove_many, collect_next = store.remove_many, meta.collect_next
            sweeping = lock.sweeping

            async def removing(digests):  # type: ignore[no-untyped-def]
                events.append("remove start")
                await asyncio.sleep(0.05)  # a slow disk: the next decision starts meanwhile
                removed = await remove_many(digests)
                events.append("remove end")
                return removed

            async def deciding(*args):  # type: ignore[no-untyped-def]
                events.append("decide")
                return await collect_next(*args)

            @contextlib.asynccontextmanager
            async def swept() -> AsyncIterator[None]:
                async with sweeping():
                    events.append("lock")
                    yield
                    events.append("unlock")

            monkeypatch.setattr(store, "remove_many", removing)
            monkeypatch.setattr(meta, "collect_next", deciding)
            monkeypatch.setattr(lock, "sweeping", swept)
            report = await registry.gc.collect()
            return report.strays

    assert asyncio.run(run()) == BLOBS
    assert events.count("remove start") >= 3
    # Within the turn: batch 2 is decided before the removal of batch 1 has ended, and so on.
    decisions = [n for n, event in enumerate(events) if event == "decide"]
    ends = [n for n, event in enumerate(events) if event == "remove end"]
    for batch, end in enumerate(ends[:-1]):
        assert decisions[batch + 1] < end, events
    # Every removal ends before the lock goes.
    turns = " ".join(events).split("unlock")
    for turn in turns:
        assert turn.count("remove start") == turn.count("remove end"), events
