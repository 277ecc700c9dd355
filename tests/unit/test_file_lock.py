"""The one `flock` helper: exclusive against every other open file, shared with shared holders,
let go on release, and waited for off the event loop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from dockyard.core import file_lock
from dockyard.core.file_lock import held, is_free, open_lock_file, release, try_lock


def test_exclusive_shared_and_released(tmp_path: Path) -> None:
    path = tmp_path / "what.lock"
    first, second = open_lock_file(path), open_lock_file(path)
    try:
        assert is_free(path)
        assert try_lock(first)
        assert not try_lock(second) and not try_lock(second, shared=True)
        assert not is_free(path)
        release(first)
        first = -1
        assert is_free(path)
        assert try_lock(second, shared=True)
        other = open_lock_file(path)
        assert try_lock(other, shared=True), "shared holders share"
        assert not is_free(path)
        release(other)
    finally:
        for fd in (first, second):
            if fd >= 0:
                os.close(fd)
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)


def test_held_waits_without_blocking_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "what.lock"

    async def scenario() -> list[str]:
        order: list[str] = []
        holder = open_lock_file(path)
        assert try_lock(holder)

        async def waiter() -> None:
            async with held(path):
                order.append("waiter")

        task = asyncio.create_task(waiter())
        await asyncio.sleep(0.05)  # the loop runs on while the waiter waits in a thread
        order.append("loop")
        release(holder)
        await asyncio.wait_for(task, 5)
        assert is_free(path), "closing the descriptor let go"
        return order

    assert asyncio.run(scenario()) == ["loop", "waiter"]


def test_many_waiters_leave_the_holders_threads_free(tmp_path: Path) -> None:
    # More waiters than the default executor has threads: were each to wait in one, the
    # holder's own work in a thread (a sweep's unlinks) would queue behind them and the lock
    # would never be let go.
    path = tmp_path / "what.lock"
    waiters = (os.cpu_count() or 1) + 40

    async def scenario() -> int:
        holder = open_lock_file(path)
        assert try_lock(holder)
        got: list[int] = []

        async def waiter(n: int) -> None:
            async with held(path, shared=True):
                got.append(n)

        tasks = [asyncio.create_task(waiter(n)) for n in range(waiters)]
        try:
            await asyncio.sleep(0.1)
            assert got == []
            work = asyncio.to_thread(lambda: "unlinked")
            assert await asyncio.wait_for(work, 5) == "unlinked"
        finally:
            release(holder)
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert is_free(path)
        return len(got)

    assert asyncio.run(scenario()) == waiters


def test_a_waiter_rings_the_doorbell_while_it_waits(tmp_path: Path) -> None:
    lock_path, bell = tmp_path / "lock", tmp_path / "lock.waiting"

    async def run() -> list[bool]:
        seen = [file_lock.is_waited_for(bell)]
        async with file_lock.held(lock_path, doorbell=bell):
            seen.append(file_lock.is_waited_for(bell))  # held, nobody waiting
            waiter = asyncio.create_task(_take(lock_path, bell))
            await asyncio.sleep(0.05)
            seen.append(file_lock.is_waited_for(bell))  # the waiter waits
        await waiter
        seen.append(file_lock.is_waited_for(bell))  # it got the lock and let go
        return seen

    assert asyncio.run(run()) == [False, False, True, False]


async def _take(lock_path: Path, bell: Path) -> None:
    async with file_lock.held(lock_path, shared=True, doorbell=bell):
        pass
