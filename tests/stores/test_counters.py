"""The SQLite counters: writers take turns on a file lock; a write whose turn is taken goes to a
thread instead of holding the event loop, and every hit still counts once."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time

from dockyard.metadata.counters import SQLiteCounters


def test_hits_from_many_tasks_count_exactly(tmp_path) -> None:
    counters = SQLiteCounters(tmp_path / "counters.db")

    async def main() -> int:
        await asyncio.gather(*(counters.hit("pull:user:a", 3600) for _ in range(200)))
        return (await counters.peek("pull:user:a", 3600))[0]

    assert asyncio.run(main()) == 200


def test_a_held_write_lock_does_not_hold_the_event_loop(tmp_path) -> None:
    counters = SQLiteCounters(tmp_path / "counters.db")
    other = os.open(counters.lock_path, os.O_CREAT | os.O_RDWR)  # another process's turn
    fcntl.flock(other, fcntl.LOCK_EX)
    threading.Timer(0.5, lambda: fcntl.flock(other, fcntl.LOCK_UN)).start()

    async def main() -> tuple[int, int]:
        ticks = 0
        hit = asyncio.create_task(counters.hit("pull:ip:1.2.3.4", 3600))
        started = time.monotonic()
        while not hit.done():
            ticks += 1
            await asyncio.sleep(0.01)
        assert time.monotonic() - started >= 0.4, "the hit should have waited for its turn"
        return (await hit)[0], ticks

    count, ticks = asyncio.run(main())
    os.close(other)
    assert count == 1
    assert ticks > 20, f"the event loop stalled while the lock was held ({ticks} ticks)"
