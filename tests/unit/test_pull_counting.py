"""Pull counting in leases: exact for a quiet key, few shared writes for a busy one, and never
more pulls granted than the shared counter knows of."""

from __future__ import annotations

import asyncio

from dockyard.auth.pull_counting import MAX_LEASE, PullCounter


class SharedCounter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.writes = 0

    async def hit(self, key: str, window_seconds: int, amount: int = 1) -> tuple[int, float]:
        self.writes += 1
        self.counts[key] = self.counts.get(key, 0) + amount
        return self.counts[key], 60.0


def test_a_quiet_key_is_counted_exactly(monkeypatch) -> None:
    shared = SharedCounter()
    pulls = PullCounter(shared)
    clock = iter(range(1_000, 2_000, 5))  # one pull every 5 seconds
    monkeypatch.setattr("dockyard.auth.pull_counting.time.time", lambda: float(next(clock)))
    numbers = [asyncio.run(pulls.hit("pull:user:a", 21600, limit=100))[0] for _ in range(10)]
    assert numbers == list(range(1, 11))
    assert shared.writes == 10 and shared.counts["pull:user:a"] == 10


def test_a_busy_key_reserves_several_and_never_grants_beyond_the_shared_count() -> None:
    shared = SharedCounter()
    pulls = PullCounter(shared)

    async def burst() -> list[int]:
        return [(await pulls.hit("pull:user:b", 21600, limit=1_000_000))[0] for _ in range(5000)]

    numbers = asyncio.run(burst())
    assert numbers == list(range(1, 5001)), "every pull gets the next number"
    assert shared.writes < 5000 / 4, shared.writes
    assert shared.counts["pull:user:b"] >= 5000
    assert shared.counts["pull:user:b"] - 5000 < MAX_LEASE, "at most one lease unused"


def test_reservations_shrink_near_the_limit() -> None:
    shared = SharedCounter()
    pulls = PullCounter(shared)

    async def burst() -> list[int]:
        return [(await pulls.hit("pull:user:c", 21600, limit=50))[0] for _ in range(60)]

    numbers = asyncio.run(burst())
    assert numbers == list(range(1, 61))  # the gate refuses those above 50
    assert shared.counts["pull:user:c"] <= 61, "no big lease taken across the limit"
