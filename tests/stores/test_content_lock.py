"""The content lock, as two processes or two replicas see it: publishers share it, a sweep
excludes them. The same tests for the file lock (one node) and PostgreSQL's advisory lock
(replicas)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from dockyard.metadata.advisory_lock import AdvisoryContentLock
from dockyard.metadata.sql import postgres_url
from dockyard.service.content_lock import ContentLock, FileContentLock

SETTLE = 0.3  # long enough for a lock request that should block to have been granted


@pytest.fixture(params=["file", "postgresql"])
def two_locks(request: pytest.FixtureRequest, tmp_path: Path):
    """Two independent holders of one lock, and a function that closes their resources."""
    if request.param == "file":
        path = tmp_path / "content.lock"
        yield lambda: (FileContentLock(path), FileContentLock(path), [])
        return
    url = postgres_url(request.getfixturevalue("postgres").create_database())

    def make() -> tuple[ContentLock, ContentLock, list]:
        engines = [create_async_engine(url), create_async_engine(url)]
        return AdvisoryContentLock(engines[0]), AdvisoryContentLock(engines[1]), engines

    yield make


async def _dispose(engines: list) -> None:
    for engine in engines:
        await engine.dispose()


def test_a_sweep_waits_for_publishers_elsewhere(two_locks: Callable) -> None:
    async def main() -> None:
        a, b, engines = two_locks()
        order: list[str] = []
        try:
            async with a.publishing(), a.publishing():  # two pushes on replica A

                async def sweep() -> None:
                    async with b.sweeping():
                        order.append("swept")

                task = asyncio.create_task(sweep())
                await asyncio.sleep(SETTLE)
                order.append("published")
            await asyncio.wait_for(task, 10)
            assert order == ["published", "swept"]
        finally:
            await _dispose(engines)

    asyncio.run(main())


def test_publishers_wait_for_a_sweep_elsewhere(two_locks: Callable) -> None:
    async def main() -> None:
        a, b, engines = two_locks()
        order: list[str] = []
        try:
            async with b.sweeping():

                async def publish() -> None:
                    async with a.publishing():
                        order.append("published")

                task = asyncio.create_task(publish())
                await asyncio.sleep(SETTLE)
                order.append("swept")
            await asyncio.wait_for(task, 10)
            assert order == ["swept", "published"]
            # And once free, publishers on both sides hold it together without waiting.
            async with a.publishing():
                await asyncio.wait_for(_publish_once(b), 5)
        finally:
            await _dispose(engines)

    asyncio.run(main())


async def _publish_once(lock: ContentLock) -> None:
    async with lock.publishing():
        pass


def test_a_sweeper_sees_a_publisher_waiting_elsewhere(two_locks: Callable) -> None:
    """`contended`: what lets a collector go from batch to batch without a gap when nobody
    waits, and leave one when a push does."""

    async def main() -> None:
        a, b, engines = two_locks()
        try:
            assert not await b.contended()
            async with b.sweeping():
                assert not await b.contended()
                task = asyncio.create_task(_publish(a))
                await asyncio.sleep(SETTLE)
                assert await b.contended(), "a publisher waits on the other side"
            await asyncio.wait_for(task, 10)
            assert not await b.contended()
        finally:
            await _dispose(engines)

    asyncio.run(main())


async def _publish(lock: ContentLock) -> None:
    async with lock.publishing():
        pass


def test_collectors_take_turns_across_processes(two_locks: Callable) -> None:
    async def main() -> None:
        a, b, engines = two_locks()
        order: list[str] = []
        try:
            async with a.collecting():

                async def collect() -> None:
                    async with b.collecting():
                        order.append("b collects")

                task = asyncio.create_task(collect())
                await asyncio.sleep(SETTLE)
                order.append("a done")
            await asyncio.wait_for(task, 10)
            assert order == ["a done", "b collects"]
            # The turn is not the content lock: a push goes on while a collector has it.
            async with a.collecting():
                await asyncio.wait_for(_publish(b), 10)
        finally:
            await _dispose(engines)

    asyncio.run(main())
