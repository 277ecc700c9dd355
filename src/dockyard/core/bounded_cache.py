"""A bounded in-memory cache: a limit on entries, on their total weight and on their age.

Every memory the server keeps for its hot paths (checked passwords, verified tokens, rendered tag
lists, manifest bytes, running upload hashes) must stay bounded whatever clients send, and must
forget what may have gone stale. One eviction rule serves them all: when a new entry takes the
cache over a limit, the least recently used entries leave first. An entry past its deadline is a
miss and is dropped when it is next looked up.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar, overload

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

NEVER = float("inf")


def _one(_: object) -> int:
    return 1


class BoundedCache(Generic[K, V]):
    """Entries by key, at most `max_entries` of them and `max_weight` in total (as `weigh`
    counts a value); each kept until its deadline, `max_age` seconds after it was put unless
    `put` names another. An entry heavier than `max_entry_weight` is never kept."""

    def __init__(
        self,
        max_entries: int,
        *,
        max_age: float | None = None,
        max_weight: int | None = None,
        weigh: Callable[[V], int] = _one,
        max_entry_weight: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("a cache holds at least one entry")
        self.max_entries = max_entries
        self.max_age = max_age
        self.max_weight = max_weight
        self.max_entry_weight = max_entry_weight if max_entry_weight is not None else max_weight
        self.weigh = weigh
        self.clock = clock
        self.weight = 0
        # key -> (deadline on `clock`, weight, value); the order is the order of last use
        self._entries: OrderedDict[K, tuple[float, int, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __iter__(self) -> Iterator[K]:
        return iter(list(self._entries))

    @overload
    def get(self, key: K) -> V | None: ...

    @overload
    def get(self, key: K, default: D) -> V | D: ...

    def get(self, key: K, default: object = None) -> object:
        """The value under `key`, now the most recently used; `default` when absent or past
        its deadline (then it is dropped)."""
        entry = self._entries.get(key)
        if entry is None:
            return default
        if entry[0] is not NEVER and entry[0] <= self.clock():  # no clock read for ageless ones
            self.pop(key)
            return default
        self._entries.move_to_end(key)
        return entry[2]

    def deadline(self, key: K) -> float | None:
        """When the entry under `key` stops being served (on `clock`); None when absent."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: K, value: V, *, expires_at: float | None = None) -> None:
        """Keep `value` under `key` until `expires_at` (on `clock`), by default `max_age` from
        now; then evict the least recently used entries until the cache is within its limits."""
        self.pop(key)
        weight = self.weigh(value)
        if self.max_entry_weight is not None and weight > self.max_entry_weight:
            return
        if expires_at is None:
            expires_at = NEVER if self.max_age is None else self.clock() + self.max_age
        self._entries[key] = (expires_at, weight, value)
        self.weight += weight
        while len(self._entries) > self.max_entries or (
            self.max_weight is not None and self.weight > self.max_weight
        ):
            _, (_, dropped, _) = self._entries.popitem(last=False)
            self.weight -= dropped

    def pop(self, key: K) -> V | None:
        """Remove the entry under `key` and return its value, even past its deadline."""
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.weight -= entry[1]
        return entry[2]

    def clear(self) -> None:
        self._entries.clear()
        self.weight = 0
