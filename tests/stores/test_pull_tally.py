"""Pull events counted per puller and manifest (`service/pull_tally.py`) and written by the event
service on every database: N pulls become events whose counts add up to N for each account, a
batch the store refuses is kept and merged with later pulls, and what the tally's bound leaves
out is counted and logged once, never dropped unseen."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
import sqlalchemy as sa

from dockyard.config import Settings
from dockyard.core.event_origin import EventOrigin
from dockyard.metadata.base import WebhookSpec
from dockyard.service.events import EventService
from dockyard.service.pull_tally import PullKey, PullTally
from tests.stores.test_repository_pages import digest

PULLS = WebhookSpec("http://hooks.example/p", "distribution", "*", ("pull",))


def key(actor: str, n: int = 1, tag: str | None = "v1", address: str = "10.0.0.1") -> PullKey:
    return ("acme/app", digest(n), "application/vnd.oci.image.manifest.v1+json", 512, tag,
            actor, address, "registry.example", "puller/1.0")  # fmt: skip


def origin_of(actor: str, request_id: str) -> EventOrigin:
    return EventOrigin(actor=actor, request_id=request_id, addr="10.0.0.1:40000", method="GET")


def pulled(service: EventService, actor: str, times: int, **kw: object) -> None:
    for i in range(times):
        service.pulled(key(actor, **kw), lambda i=i: origin_of(actor, f"{actor}-{i}"))  # type: ignore[arg-type]


def counts_by_actor(events) -> Counter[str]:
    total: Counter[str] = Counter()
    for e in events:
        total[e.fields["origin"]["actor"]] += e.fields["count"]
    return total


def test_n_pulls_become_events_whose_counts_add_up_per_actor(meta, run) -> None:
    hook = run(meta.add_webhook(PULLS, "s3cret-pulls", 1.0))
    service = EventService(Settings(event_pulls=True), meta)
    pulled(service, "alice", 700)
    pulled(service, "bob", 300)
    pulled(service, "bob", 5, tag=None)  # by digest: another key
    pulled(service, "", 20, address="10.0.0.9")  # anonymous, from elsewhere
    run(service.flush_pulls())
    pulled(service, "alice", 11)  # the next window
    run(service.flush_pulls())
    run(service.flush_pulls())  # nothing left: writes nothing
    events = run(meta.pending_events(hook, 1000))
    assert counts_by_actor(events) == {"alice": 711, "bob": 305, "": 20}
    assert len(events) == 5  # one per key and window, not one per pull
    first = events[0].fields
    # The window's first pull describes the request; the count says how many it stands for.
    assert first["origin"]["request_id"] == "alice-0" and first["count"] == 700
    assert first["action"] == "pull" and first["tag"] == "v1" and first["size"] == 512
    by_digest = next(e for e in events if "tag" not in e.fields)
    assert by_digest.fields["count"] == 5


def test_a_refused_batch_is_kept_merged_and_the_bound_counts_drops(meta, run, caplog) -> None:
    hook = run(meta.add_webhook(PULLS, "s3cret-pulls", 1.0))
    service = EventService(Settings(event_pulls=True), meta)
    service._pulls = PullTally(max_keys=3)
    reported: list[int] = []
    service.on_dropped = reported.append

    def outbox_away(conn: sa.Connection) -> None:
        conn.execute(sa.text("ALTER TABLE event_outbox RENAME TO event_outbox_away"))

    def outbox_back(conn: sa.Connection) -> None:
        conn.execute(sa.text("ALTER TABLE event_outbox_away RENAME TO event_outbox"))

    pulled(service, "alice", 40)
    pulled(service, "bob", 2)
    run(meta.runner.write(outbox_away))
    with pytest.raises(sa.exc.DBAPIError):
        run(service.flush_pulls())
    pulled(service, "alice", 10)  # merged into the kept key
    pulled(service, "carol", 1)  # the third key: still room
    with caplog.at_level(logging.ERROR, logger="dockyard.events"):
        pulled(service, "dave", 3)  # no room: dropped, counted
        pulled(service, "erin", 1)
    assert reported == [1, 1, 1, 1] and service._pulls.dropped == 4
    assert len([r for r in caplog.records if "dropped" in r.getMessage()]) == 1  # logged once
    run(meta.runner.write(outbox_back))
    run(service.flush_pulls())
    events = run(meta.pending_events(hook, 100))
    assert counts_by_actor(events) == {"alice": 50, "bob": 2, "carol": 1}
    alice = next(e for e in events if e.fields["origin"]["actor"] == "alice")
    assert alice.fields["origin"]["request_id"] == "alice-0"  # the older first pull kept


def test_the_tally_alone() -> None:
    tally = PullTally(max_keys=2)
    calls: list[str] = []

    def origin() -> EventOrigin:
        calls.append("asked")
        return origin_of("alice", "r")

    for _ in range(1000):
        assert tally.add(key("alice"), origin)
    assert calls == ["asked"]  # built once per key, not per pull
    assert tally.add(key("bob"), lambda: None)
    assert not tally.add(key("carol"), origin)
    taken = tally.take()
    assert len(tally) == 0
    assert {k[5]: count for k, count, _ in taken} == {"alice": 1000, "bob": 1}
    # Given back over a full tally: what has no room is counted as dropped.
    tally.add(key("x"), lambda: None)
    tally.add(key("y"), lambda: None)
    assert tally.give_back(taken) == 1001
    assert tally.dropped == 1002
