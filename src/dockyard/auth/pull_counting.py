"""Counting pulls against a limit without a shared write for every pull.

Each server process reserves pulls of a key from the shared counter in leases: one pull at a
time while the key is quiet or its limit is low (up to 100 a window: then every count is exact),
more at once while it is busy (about 100 ms worth of its recent rate, at most a hundredth of
its limit and `MAX_LEASE`). A reservation counts in the shared
counter at once, so limits are never exceeded; what a process reserved and did not use is
lost when the window ends, so a very busy client may be refused up to a lease early.

`RateLimit-Remaining` is worked out from the shared counter's total as read while answering
(every pull reserved by any process, used or not; see `AccessGate`), never below the highest
count this process has announced in the window (`announce`). The total only grows within a
window and a client's next request is answered after its previous answer was read, so the
remaining pulls shown never go up between two answers to one client, whichever worker or
replica gives them, and whatever order concurrent pulls finish in. Where pulls are reserved one
at a time it is exact; a busy key with a high limit sees it fall by a lease at a time.
One shared write per token-checked manifest GET was the reason for leases (see bench/README.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

MAX_LEASE = 256
LEASE_SHARE = 100  # a lease holds at most limit // LEASE_SHARE pulls
LEASE_SECONDS = 0.1
MAX_KEYS = 10_000


class SharedCounters(Protocol):
    async def hit(self, key: str, window_seconds: int, amount: int = 1) -> tuple[int, float]: ...


@dataclass(slots=True)
class _Lease:
    window: int
    ends: float  # when the window ends
    last: int  # the count of the last pull handed out from this lease
    left: int  # reserved and not yet handed out
    size: int
    taken_at: float


class PullCounter:
    def __init__(self, counters: SharedCounters) -> None:
        self.counters = counters
        self._leases: dict[str, _Lease] = {}
        # key -> (when its window ends, the highest count announced in it)
        self._announced: dict[str, tuple[float, int]] = {}

    def announce(self, key: str, count: int, window_ends: float) -> int:
        """The count to state in an answer for `key`: `count`, or a higher one already
        stated in the same window (so the remaining pulls shown never go up)."""
        seen = self._announced.get(key)
        if seen is not None and seen[0] == window_ends and seen[1] >= count:
            return seen[1]
        if len(self._announced) >= MAX_KEYS:
            self._announced.clear()
        self._announced[key] = (window_ends, count)
        return count

    @staticmethod
    def window_ends(window_seconds: int, now: float | None = None) -> float:
        now = time.time() if now is None else now
        return int(now // window_seconds) * window_seconds + window_seconds

    def take(self, key: str) -> int | None:
        """A pull from this process's lease, without awaiting anything: its number in the
        window; None when the shared counter must be asked (no lease, an empty one, or a
        new window)."""
        lease = self._leases.get(key)
        if lease is not None and lease.left > 0 and time.time() < lease.ends:
            lease.left -= 1
            lease.last += 1
            return lease.last
        return None

    def has_lease(self, key: str) -> bool:
        """Whether `take` would give a number (without taking it)."""
        lease = self._leases.get(key)
        return lease is not None and lease.left > 0 and time.time() < lease.ends

    def reset_in(self, key: str) -> float:
        """Seconds until the window of the key's lease ends (after `take` gave a number)."""
        return self._leases[key].ends - time.time()

    async def hit(self, key: str, window_seconds: int, limit: int) -> tuple[int, float, int | None]:
        """Count one pull; returns (its number in the window, seconds until the window ends,
        the shared total just written or None when the pull came from this process's lease)."""
        taken = self.take(key)
        if taken is not None:
            return taken, self.reset_in(key), None
        now = time.time()
        window = int(now // window_seconds) * window_seconds
        lease = self._leases.get(key)
        size = 1
        if lease is not None and lease.window == window:
            rate = lease.size / max(now - lease.taken_at, 1e-3)
            size = int(min(max(rate * LEASE_SECONDS, 1), MAX_LEASE))
            # At most a hundredth of the limit, so what `RateLimit-Remaining` states (every
            # reservation) is that close to exact, and exact for limits up to 100 (Docker
            # Hub's); close to the limit, only what could still be granted.
            size = max(1, min(size, limit // LEASE_SHARE, (limit - lease.last) // 2))
        count, reset = await self.counters.hit(key, window_seconds, size)
        first = count - size + 1
        if len(self._leases) >= MAX_KEYS:
            self._leases.clear()
        current = self._leases.get(key)
        # A concurrent pull may have taken a later lease meanwhile: keep handing out its
        # (higher) numbers, not ours again.
        if current is None or current.window != window or current.last + current.left < count:
            self._leases[key] = _Lease(window, window + window_seconds, first, size - 1, size, now)
        return first, reset, count
