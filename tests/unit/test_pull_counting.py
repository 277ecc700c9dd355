"""Pull counting in leases: exact for a quiet key, few shared writes for a busy one, and never
more pulls granted than the shared counter knows of."""

from __future__ import annotations

import asyncio
import itertools

from dockyard.auth.pull_counting import MAX_LEASE, PullCounter


class SharedCounter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.writes = 0

    async def hit(self, key: str, window_seconds: int, amount: int = 1) -> tuple[int, float]:
        self.writes += 1
        self.counts[key] = self.counts.get(key, 0) + amount
        return self.counts[key], 60.0

    async def peek(self, key: str, window_seconds: int) -> tuple[int, float]:
        return self.counts.get(key, 0), 60.0

    def peek_now(self, key: str, window_seconds: int) -> int | None:
        return self.counts.get(key, 0)


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


def test_a_limit_of_100_or_less_is_counted_exactly_however_busy() -> None:
    shared = SharedCounter()
    pulls = PullCounter(shared)

    async def burst() -> list[int]:
        return [(await pulls.hit("pull:user:e", 21600, limit=100))[2] or 0 for _ in range(100)]

    assert asyncio.run(burst()) == list(range(1, 101)), "every pull its own shared write"


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
        shared.counts["pull:user:d"],
        60.0,
        shared.counts["pull:user:d"],
    )


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
    gate = AccessGate(Settings(authenticated_pull_limit=4000), None, None, shared)  # type: ignore[arg-type]
    caller = Caller(Principal(name="u"), None, "127.0.0.1")

    async def pull() -> dict[str, str]:
        headers: dict[str, str] = {}
        if not gate.count_pull_now(caller, headers):
            headers.update(await gate.count_pull(caller))
        return headers

    async def pulls(count: int) -> list[str]:
        return [(await pull())["RateLimit-Remaining"] for _ in range(count)]

    stated = [int(value.removesuffix(";w=21600")) for value in asyncio.run(pulls(4000))]
    assert stated[0] == 3999 and stated[-1] == 0
    assert all(later <= earlier for earlier, later in itertools.pairwise(stated)), stated
    # What every worker reserved is stated: a lease's pulls are shown as taken at once, and
    # a lease is at most a hundredth of the limit.
    assert len(set(stated)) < 4000
    assert all(earlier - later <= 40 for earlier, later in itertools.pairwise(stated))
    assert shared.writes < 4000 / 4, "most pulls came from leases"
    with pytest.raises(RegistryError) as refused:
        asyncio.run(pull())
    assert refused.value.code is ErrorCode.TOOMANYREQUESTS
    assert refused.value.headers["RateLimit-Remaining"] == "0;w=21600"
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert gate.count_pull_now(Caller(Principal(name="root", is_admin=True), None, "x"), {})


def test_remaining_never_rises_when_two_workers_answer_in_turn(tmp_path, monkeypatch) -> None:
    """Two worker processes (two gates on one shared counter file) answer one busy client's
    pulls alternately: each holds a lease of its own, and the remaining pulls stated never go
    up from one answer to the next, whichever worker gave it."""
    from dockyard.auth.gate import AccessGate
    from dockyard.auth.requests import Caller
    from dockyard.config import Settings
    from dockyard.metadata.counters import SQLiteCounters
    from dockyard.service.accounts import Principal

    clock = [1000.0]
    monkeypatch.setattr("dockyard.auth.pull_counting.time.time", lambda: clock[0])
    monkeypatch.setattr("dockyard.metadata.counters.time.time", lambda: clock[0])
    settings = Settings(authenticated_pull_limit=5_000)
    workers = [
        AccessGate(settings, None, None, SQLiteCounters(tmp_path / "counters.db"))  # type: ignore[arg-type]
        for _ in range(2)
    ]
    caller = Caller(Principal(name="busy"), None, "127.0.0.1")

    async def pull(gate: AccessGate) -> int:
        clock[0] += 0.001  # a thousand pulls a second: leases of many pulls
        headers: dict[str, str] = {}
        if not gate.count_pull_now(caller, headers):
            headers.update(await gate.count_pull(caller))
        return int(headers["RateLimit-Remaining"].split(";")[0])

    async def run() -> list[int]:
        return [await pull(workers[i % 2 if i < 300 else (i // 7) % 2]) for i in range(600)]

    stated = asyncio.run(run())
    assert all(later <= earlier for earlier, later in itertools.pairwise(stated)), [
        (i, a, b) for i, (a, b) in enumerate(itertools.pairwise(stated)) if b > a
    ][:5]
    assert stated[0] == 4_999 and stated[-1] <= 5_000 - 600
    assert stated[-1] >= 5_000 - 600 - 2 * MAX_LEASE, "at most a lease per worker unused"
