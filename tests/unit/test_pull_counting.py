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


def test_lease_pulls_are_taken_without_awaiting_until_the_window_ends(monkeypatch) -> None:
    shared = SharedCounter()
    pulls = PullCounter(shared)
    now = [1000.0]
    monkeypatch.setattr("dockyard.auth.pull_counting.time.time", lambda: now[0])
    assert pulls.take("pull:user:d") is None, "no lease yet: the shared counter is asked"
    assert asyncio.run(pulls.hit("pull:user:d", 21600, limit=1_000_000))[0] == 1
    assert asyncio.run(pulls.hit("pull:user:d", 21600, limit=1_000_000))[0] == 2  # a lease
    writes = shared.writes
    assert [pulls.take("pull:user:d") for _ in range(3)] == [3, 4, 5]
    assert shared.writes == writes, "taken from the lease"
    assert pulls.reset_in("pull:user:d") == 21600 - 1000.0
    now[0] = 21600.0  # the next window
    assert pulls.take("pull:user:d") is None
    assert asyncio.run(pulls.hit("pull:user:d", 21600, limit=1_000_000)) == (
        shared.counts["pull:user:d"], 60.0)


def test_the_gate_counts_from_leases_and_refuses_past_the_limit(monkeypatch) -> None:
    """The synchronous path gives the same headers and the same refusal as the awaited one."""
    import pytest

    from dockyard.auth.gate import AccessGate
    from dockyard.auth.requests import Caller
    from dockyard.config import Settings
    from dockyard.core.errors import ErrorCode, RegistryError
    from dockyard.service.accounts import Principal

    shared = SharedCounter()
    monkeypatch.setattr("dockyard.auth.pull_counting.time.time", lambda: 1000.0)  # busy key
    gate = AccessGate(Settings(authenticated_pull_limit=40), None, None, shared)  # type: ignore[arg-type]
    caller = Caller(Principal(name="u"), None, "127.0.0.1")

    async def pull() -> dict[str, str]:
        headers: dict[str, str] = {}
        if not gate.count_pull_now(caller, headers):
            headers.update(await gate.count_pull(caller))
        return headers

    remaining = [asyncio.run(pull())["RateLimit-Remaining"] for _ in range(40)]
    assert remaining == [f"{n};w=21600" for n in range(39, -1, -1)]
    assert shared.writes < 40, "some pulls came from leases"
    with pytest.raises(RegistryError) as refused:
        asyncio.run(pull())
    assert refused.value.code is ErrorCode.TOOMANYREQUESTS
    assert refused.value.headers["RateLimit-Remaining"] == "0;w=21600"
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert gate.count_pull_now(Caller(Principal(name="root", is_admin=True), None, "x"), {})
