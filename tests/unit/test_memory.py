"""Freed transfer buffers handed back to the system: a trim after every burst, not per request."""

from __future__ import annotations

import asyncio

from dockyard.core import memory


class FakeLibc:
    def __init__(self) -> None:
        self.trims = 0

    def malloc_trim(self, pad: int) -> int:
        self.trims += 1
        return 1


def test_a_burst_of_transfers_is_followed_by_one_trim_and_the_next_burst_by_another(
    monkeypatch,
) -> None:
    libc = FakeLibc()
    monkeypatch.setattr(memory, "_libc", libc)
    monkeypatch.setattr(memory, "_TRIM_INTERVAL", 0.3)
    monkeypatch.setattr(memory, "_last_trim", 0.0)
    monkeypatch.setattr(memory, "_pending", False)

    async def scenario() -> list[int]:
        seen = []
        for _ in range(5):  # five transfers ending within a few milliseconds
            memory.trim_soon()
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
        seen.append(libc.trims)  # one trim, shortly after the burst
        memory.trim_soon()  # a transfer within the interval: trimmed too, but later
        await asyncio.sleep(0.05)
        seen.append(libc.trims)
        await asyncio.sleep(0.4)
        seen.append(libc.trims)
        return seen

    assert asyncio.run(scenario()) == [1, 1, 2]
