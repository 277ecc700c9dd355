"""How the serving collector paces itself: it rests between batches only while its worker has
requests to serve, and between rounds it starts reviewing a moment after the last change (at
grace 0), not at its next round. Asserted on its counters and on a clock of the test's own, so
the machine's speed changes nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import types
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from dockyard.api.middleware import RegistryHeaders
from dockyard.api.services import Services
from dockyard.assembly import open_registry
from dockyard.config import Settings
from dockyard.service import gc as gc_module
from dockyard.service.activity import Activity
from dockyard.service.content_lock import FileContentLock
from dockyard.service.registry import Registry

BLOBS = 400  # several batches (the first holds 100)


async def queue_strays(registry: Registry) -> list[str]:
    """Bytes without a record, queued: each batch of the round reclaims some."""
    digests = []
    for _ in range(BLOBS):
        data = os.urandom(64)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        await registry.blob_store.put(digest, data)
        digests.append(digest)
    await registry.meta.enqueue_for_review(digests)
    return digests


async def paced_round(settings: Settings, busy: bool) -> tuple[int, int, int]:
    async with open_registry(settings, create=True) as registry:
        await queue_strays(registry)
        activity = Activity()
        registry.yield_to(activity)
        if busy:
            activity.started += 1
            activity.in_progress += 1  # a request the worker is answering all along
        report = await registry.gc.collect(paced=True)
        return report.strays, registry.gc.rests, registry.gc.unrested


def test_a_collector_whose_worker_serves_nothing_does_not_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc_module, "LOCK_BUDGET", 0.001)  # a turn of one batch each
    settings = Settings(data_dir=tmp_path / "data", gc_grace_seconds=0)
    collected, rests, unrested = asyncio.run(paced_round(settings, busy=False))
    assert collected == BLOBS
    assert rests == 0
    assert unrested >= 2


def test_a_collector_whose_worker_serves_rests_after_every_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc_module, "LOCK_BUDGET", 0.001)  # a turn of one batch each
    settings = Settings(data_dir=tmp_path / "data", gc_grace_seconds=0)
    collected, rests, unrested = asyncio.run(paced_round(settings, busy=True))
    assert collected == BLOBS
    assert rests >= 2
    assert unrested == 0


def test_a_request_started_and_answered_during_a_batch_still_earns_the_rest() -> None:
    activity = Activity()
    mark = activity.mark()
    assert activity.idle_since(mark)
    activity.started += 1
    activity.in_progress += 1
    assert not activity.idle_since(mark)
    activity.in_progress -= 1
    assert not activity.idle_since(mark), "a request came and went during the batch"
    assert activity.idle_since(activity.mark())


def test_the_application_counts_its_requests_in_progress() -> None:
    activity = Activity()
    seen: list[tuple[int, int]] = []

    async def page(request: Request) -> JSONResponse:
        seen.append((activity.started, activity.in_progress))
        return JSONResponse({})

    async def fails(request: Request) -> JSONResponse:
        raise RuntimeError("a handler that fails")

    app = RegistryHeaders(
        Starlette(routes=[Route("/", page), Route("/fails", fails)]),
        Services(),
        activity=activity,
        log_requests=False,
    )

    async def requests() -> None:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            await asyncio.gather(*(client.get("/") for _ in range(3)))
            assert (await client.get("/fails")).status_code == 500

    asyncio.run(requests())
    assert len(seen) == 3 and all(in_progress >= 1 for _, in_progress in seen)
    assert activity.started == 4
    assert activity.in_progress == 0, "a failed request is counted out too"


class Clock:
    """The collector's clock in this test: sleeping moves it on at once."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


async def wake_after_last_change(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> float:
    async with open_registry(settings, create=True) as registry:
        await registry.meta.enqueue_for_review(["sha256:" + "a" * 64])
        await registry.meta.enqueue_for_review(["sha256:" + "b" * 64])
        queued = await registry.meta.queued_since(0, time.time() + 3600)
        assert queued is not None
        last_change = queued[1]  # when the second row was queued
        clock = Clock(last_change)
        monkeypatch.setattr(gc_module, "time", clock)
        monkeypatch.setattr(
            gc_module,
            "asyncio",
            types.SimpleNamespace(
                sleep=clock.sleep, Event=asyncio.Event, wait_for=asyncio.wait_for
            ),
        )
        assert await registry.gc.until_due(last_change + 60)
        return clock.now - last_change


def test_at_grace_zero_the_review_starts_a_moment_after_the_last_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data", gc_grace_seconds=0, gc_interval_seconds=60)
    waited = asyncio.run(wake_after_last_change(settings, monkeypatch))
    # Long enough for a push to follow its layers with its manifest, and no longer: this wait
    # is on the clock of every reclaim after a burst of deletions.
    assert 0.1 - 1e-6 <= waited <= 0.15  # (times of 1.8e9 s carry about 2e-7 s of rounding)


def test_an_unrested_collector_leaves_no_gap_when_nobody_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between batches it lets go of the content lock for TURN_SECONDS only for a waiter:
    with none, the gaps were a fifth of an online reclaim's time."""
    monkeypatch.setattr(gc_module, "LOCK_BUDGET", 0.001)  # a turn of one batch each
    settings = Settings(data_dir=tmp_path / "data", gc_grace_seconds=0)

    async def run() -> tuple[int, int]:
        async with open_registry(settings, create=True) as registry:
            await queue_strays(registry)
            registry.yield_to(Activity())
            await registry.gc.collect(paced=True)
            return registry.gc.unrested, registry.gc.turns

    unrested, turns = asyncio.run(run())
    assert unrested >= 2
    assert turns == 0


def test_a_waiting_push_gets_its_turn_between_unrested_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gc_module, "LOCK_BUDGET", 0.001)  # a turn of one batch each
    settings = Settings(data_dir=tmp_path / "data", gc_grace_seconds=0)

    async def run() -> tuple[int, int]:
        async with open_registry(settings, create=True) as registry:
            await queue_strays(registry)
            registry.yield_to(Activity())
            published = 0
            collecting = asyncio.create_task(registry.gc.collect(paced=True))
            while not registry.gc.in_batch:
                await asyncio.sleep(0.001)
            # A publisher of another worker: its own descriptor on the same lock file.
            other = FileContentLock(settings.data_dir / "content.lock")
            while not collecting.done():
                async with other.publishing():
                    published += 1
                await asyncio.sleep(0.002)
            await collecting
            return published, registry.gc.turns

    published, turns = asyncio.run(run())
    assert turns >= 1, "the collector never saw the waiting publisher"
    assert published >= 1


def test_serving_collectors_review_one_at_a_time(tmp_path: Path) -> None:
    """Another worker's collector holds the turn: this one waits for it, so that pacing one
    collector paces the registry's collection."""
    settings = Settings(data_dir=tmp_path / "data", gc_grace_seconds=0)

    async def run() -> tuple[int, int]:
        async with open_registry(settings, create=True) as registry:
            await queue_strays(registry)
            other = FileContentLock(settings.data_dir / "content.lock")
            async with other.collecting():
                collecting = asyncio.create_task(registry.gc.collect(paced=True))
                await asyncio.sleep(1.0)
                waiting = await registry.meta.review_queue_length()
            report = await collecting
            return waiting, report.strays

    waiting, collected = asyncio.run(run())
    assert waiting == BLOBS, "it reviewed while another collector had the turn"
    assert collected == BLOBS
