"""New request ids: 16 hex digits, never the same twice in a process or across forked workers
(the serving parent may import the module before it forks them)."""

from __future__ import annotations

import multiprocessing
import re

from dockyard.api.request_id import new_request_id


def _ids(count: int) -> list[str]:
    return [new_request_id() for _ in range(count)]


def test_ids_are_plain_and_distinct_in_one_process() -> None:
    ids = _ids(5000)
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)


def test_forked_workers_draw_ids_of_their_own() -> None:
    before = _ids(3)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        children = pool.map(_ids, [50, 50, 50, 50])
    everything = before + [i for ids in children for i in ids]
    assert len(set(everything)) == len(everything)
