"""The collector's batches are sized by the time they hold the content lock: they grow while
they are quick (fewer transactions) and shrink when they are slow (pushes wait less)."""

from __future__ import annotations

from dockyard.service.gc import BATCH, LOCK_BUDGET, MAX_BATCH, MIN_BATCH, next_batch


def test_a_quick_batch_is_followed_by_a_larger_one_at_most_twice_its_size() -> None:
    assert next_batch(BATCH, LOCK_BUDGET / 10) == 2 * BATCH
    assert next_batch(BATCH, 0.0) == 2 * BATCH
    assert BATCH < next_batch(BATCH, LOCK_BUDGET * 0.8) < 2 * BATCH


def test_a_slow_batch_is_followed_by_a_smaller_one_in_proportion() -> None:
    assert next_batch(400, LOCK_BUDGET * 4) == 100
    assert next_batch(BATCH, LOCK_BUDGET * 1000) == MIN_BATCH


def test_batches_stay_within_their_bounds() -> None:
    size = BATCH
    for _ in range(20):
        size = next_batch(size, LOCK_BUDGET / 100)
    assert size == MAX_BATCH
    for _ in range(20):
        size = next_batch(size, LOCK_BUDGET * 100)
    assert size == MIN_BATCH


def test_with_replicas_batches_stay_smaller() -> None:
    from dockyard.service.gc import MAX_SHARED_BATCH

    size = BATCH
    for _ in range(20):
        size = next_batch(size, LOCK_BUDGET / 100, largest=MAX_SHARED_BATCH)
    assert size == MAX_SHARED_BATCH < MAX_BATCH
