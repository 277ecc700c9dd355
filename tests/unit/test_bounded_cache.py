"""The bounded cache keeps its limits whatever is put in it, forgets what is past its deadline,
and evicts the least recently used entry first."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.core.bounded_cache import BoundedCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_least_recently_used_entry_leaves_first() -> None:
    cache: BoundedCache[str, int] = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "b" is now the least recently used
    cache.put("c", 3)
    assert "b" not in cache
    assert cache.get("a") == 1
    assert cache.get("c") == 3


def test_an_entry_past_its_age_is_a_miss_and_is_dropped() -> None:
    clock = Clock()
    cache: BoundedCache[str, int] = BoundedCache(10, max_age=5.0, clock=clock)
    cache.put("a", 1)
    clock.now += 4.9
    assert cache.get("a") == 1
    clock.now += 0.1
    assert cache.get("a") is None
    assert len(cache) == 0


def test_a_deadline_given_to_put_wins_over_the_age_limit() -> None:
    clock = Clock()
    cache: BoundedCache[str, int] = BoundedCache(10, max_age=10.0, clock=clock)
    cache.put("short", 1, expires_at=clock.now + 1.0)
    assert cache.deadline("short") == clock.now + 1.0
    clock.now += 1.0
    assert cache.get("short") is None
    assert cache.deadline("short") is None


def test_a_stored_none_is_told_from_a_miss_by_the_default() -> None:
    cache: BoundedCache[str, int | None] = BoundedCache(4)
    missing = object()
    cache.put("gone", None)
    assert cache.get("gone", missing) is None
    assert cache.get("never", missing) is missing


def test_weight_limits_total_and_single_entries() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(
        100, max_weight=10, weigh=len, max_entry_weight=4
    )
    cache.put("big", b"12345")
    assert "big" not in cache  # heavier than one entry may be
    for key in "abc":
        cache.put(key, b"1234")
    assert cache.weight == 8 and "a" not in cache  # 12 > 10: the oldest went
    cache.put("b", b"1")  # replacing an entry replaces its weight
    assert cache.weight == 5


def test_putting_an_entry_too_heavy_drops_the_old_one_under_its_key() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(10, max_weight=4, weigh=len)
    cache.put("k", b"12")
    cache.put("k", b"12345")
    assert "k" not in cache and cache.weight == 0


def test_pop_and_clear_keep_the_weight_right() -> None:
    cache: BoundedCache[str, bytes] = BoundedCache(10, max_weight=100, weigh=len)
    cache.put("a", b"123")
    cache.put("b", b"45")
    assert cache.pop("a") == b"123" and cache.pop("a") is None
    assert cache.weight == 2
    cache.clear()
    assert len(cache) == 0 and cache.weight == 0


def test_a_cache_holds_at_least_one_entry() -> None:
    with pytest.raises(ValueError):
        BoundedCache(0)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.integers(0, 9), st.binary(max_size=12)),
        st.tuples(st.just("get"), st.integers(0, 9), st.just(b"")),
        st.tuples(st.just("pop"), st.integers(0, 9), st.just(b"")),
        st.tuples(st.just("tick"), st.integers(0, 3), st.just(b"")),
    ),
    max_size=80,
)


@given(operations, st.integers(1, 5), st.integers(0, 30), st.sampled_from([None, 2.0, 5.0]))
def test_the_cache_behaves_as_a_least_recently_used_model(
    ops: list[tuple[str, int, bytes]], max_entries: int, max_weight: int, max_age: float | None
) -> None:
    clock = Clock()
    cache: BoundedCache[int, bytes] = BoundedCache(
        max_entries, max_weight=max_weight, weigh=len, max_age=max_age, clock=clock
    )
    model: OrderedDict[int, tuple[float, bytes]] = OrderedDict()  # oldest use first
    for op, key, value in ops:
        if op == "put":
            model.pop(key, None)
            if len(value) <= max_weight:
                deadline = clock.now + max_age if max_age is not None else float("inf")
                model[key] = (deadline, value)
                while len(model) > max_entries or sum(len(v) for _, v in model.values()) > (
                    max_weight
                ):
                    model.popitem(last=False)
            cache.put(key, value)
        elif op == "get":
            expected = None
            if key in model:
                if model[key][0] > clock.now:
                    expected = model[key][1]
                    model.move_to_end(key)
                else:
                    del model[key]
            assert cache.get(key) == expected
        elif op == "pop":
            assert cache.pop(key) == (model.pop(key)[1] if key in model else None)
        else:
            clock.now += key
        assert list(cache) == list(model)
        assert len(cache) <= max_entries
        assert cache.weight == sum(len(v) for _, v in model.values()) <= max_weight
