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


def test_after_the_trim_jemalloc_is_made_to_give_back_once_its_decay_time_has_passed(
    monkeypatch,
) -> None:
    given_back: list[float] = []
    monkeypatch.setattr(memory, "_libc", FakeLibc())
    monkeypatch.setattr(memory, "_TRIM_INTERVAL", 0.05)
    monkeypatch.setattr(memory, "_DECAY_SECONDS", 0.1)
    monkeypatch.setattr(memory, "_last_trim", 0.0)
    monkeypatch.setattr(memory, "_pending", False)
    monkeypatch.setattr(memory, "_give_back_at", None)

    async def scenario() -> list[int]:
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(memory, "give_back", lambda: given_back.append(loop.time()))
        seen = []
        for _ in range(3):  # transfers ending one after the other: one give-back, after the last
            memory.trim_soon()
            await asyncio.sleep(0.08)
        seen.append(len(given_back))
        await asyncio.sleep(0.5)
        seen.append(len(given_back))
        return seen

    assert asyncio.run(scenario()) == [0, 1]
