"""The outbox and webhooks on every database: events written with the changes they report
(and only for the webhooks whose filters take them), one lease holder per webhook, in order,
acknowledged rows gone, the delivery log kept short, and a removed webhook's rows with it."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.core.event_origin import EventOrigin, set_origin
from dockyard.metadata.base import TagImmutable, WebhookSpec
from dockyard.metadata.schema import WEBHOOK_DELIVERIES_KEPT
from tests.stores.test_repository_pages import digest, push

EVERYTHING = WebhookSpec("http://hooks.example/all", "distribution", "*", ("push", "delete"))


def actions(events) -> list[tuple]:
    return [
        (e.fields["repository"], e.fields["action"], e.fields.get("tag"), e.fields.get("digest"))
        for e in events
    ]


def test_no_webhook_no_events(meta, run) -> None:
    push(meta, run, "acme/app", digest(10), ["v1"])
    hook = run(meta.add_webhook(EVERYTHING, "s3cret-value", 1.0))
    assert run(meta.pending_events(hook, 100)) == []  # nothing from before it existed


def test_changes_write_their_events_in_order_for_matching_webhooks(meta, run) -> None:
    everything = run(meta.add_webhook(EVERYTHING, "s3cret-value", 1.0))
    acme_deletes = run(
        meta.add_webhook(
            WebhookSpec("http://hooks.example/d", "cloudevents", "acme/*", ("delete",)),
            "other-s3cret",
            1.0,
        )
    )
    push(meta, run, "acme/app", digest(10), ["v1", "latest"])
    push(meta, run, "other/app", digest(11), [])
    assert run(meta.delete_tag("acme/app", "latest"))
    assert not run(meta.delete_tag("acme/app", "latest"))  # nothing deleted: no event
    assert run(meta.delete_manifest("other/app", digest(11)))
    assert run(meta.delete_repository("acme/app")) is not None
    assert actions(run(meta.pending_events(everything, 100))) == [
        ("acme/app", "push", "v1", digest(10)),
        ("acme/app", "push", "latest", digest(10)),
        ("other/app", "push", None, digest(11)),
        ("acme/app", "delete", "latest", None),
        ("other/app", "delete", None, digest(11)),
        ("acme/app", "delete", None, None),
    ]
    deletes = run(meta.pending_events(acme_deletes, 100))
    assert actions(deletes) == [
        ("acme/app", "delete", "latest", None),
        ("acme/app", "delete", None, None),
    ]
    # One id per event, the same in every webhook's outbox.
    all_ids = {e.event_id for e in run(meta.pending_events(everything, 100))}
    assert len(all_ids) == 6 and {e.event_id for e in deletes} <= all_ids


def test_a_refused_change_writes_no_event(meta, run) -> None:
    hook = run(meta.add_webhook(EVERYTHING, "s3cret-value", 1.0))
    push(meta, run, "acme/app", digest(10), ["v1"])
    run(meta.add_tag_rule("acme", "v*", 1.0))
    with pytest.raises(TagImmutable):
        run(meta.delete_tag("acme/app", "v1", immutable_checked=True))
    assert len(run(meta.pending_events(hook, 100))) == 1


def test_the_request_behind_a_change_is_kept(meta, run) -> None:
    hook = run(meta.add_webhook(EVERYTHING, "s3cret-value", 1.0))

    origin = EventOrigin(actor="alice", request_id="r-1", method="PUT", useragent="ua")

    async def in_request() -> None:
        set_origin(origin)  # as the HTTP layer does, in the request's own context
        await meta.delete_tag("acme/app", "v1")

    push(meta, run, "acme/app", digest(10), ["v1"])
    run(in_request())
    events = run(meta.pending_events(hook, 100))
    assert "origin" not in events[0].fields  # pushed outside any request
    assert events[1].fields["origin"] == origin.as_json()


def test_one_lease_holder_at_a_time(meta, run) -> None:
    hook = run(meta.add_webhook(EVERYTHING, "s3cret-value", 1.0))
    push(meta, run, "acme/app", digest(10), ["v1"])
    assert run(meta.due_webhooks("a", 100.0)) == [hook]
    assert run(meta.claim_webhook(hook, "a", 100.0, 110.0))
    assert not run(meta.claim_webhook(hook, "b", 105.0, 115.0))
    assert run(meta.due_webhooks("b", 105.0)) == []
    assert run(meta.claim_webhook(hook, "a", 105.0, 115.0))  # renewed by its holder

    async def race() -> list[bool]:
        return list(
            await asyncio.gather(
                *(meta.claim_webhook(hook, f"p{i}", 200.0, 210.0) for i in range(6))
            )
        )

    assert sum(run(race())) == 1  # expired: exactly one of six takes it
    holder = next(f"p{i}" for i in range(6) if run(meta.claim_webhook(hook, f"p{i}", 201.0, 210.0)))
    events = run(meta.pending_events(hook, 100))
    # Whoever lost the lease cannot acknowledge: the holder sends the rows again.
    assert not run(meta.events_delivered(hook, "a", events, 200, 202.0))
    assert len(run(meta.pending_events(hook, 100))) == 1
    assert run(meta.events_delivered(hook, holder, events, 200, 202.0))
    assert run(meta.pending_events(hook, 100)) == []
    state = run(meta.webhook(hook))
    assert state.delivered == 1 and state.pending == 0 and state.last_status == 200


def test_failures_back_off_and_the_log_keeps_the_newest(meta, run) -> None:
    hook = run(meta.add_webhook(EVERYTHING, "s3cret-value", 1.0))
    push(meta, run, "acme/app", digest(10), ["v1"])
    assert run(meta.claim_webhook(hook, "a", 100.0, 1e12))
    events = run(meta.pending_events(hook, 100))
    for attempt in range(1, WEBHOOK_DELIVERIES_KEPT + 5):
        made = run(
            meta.events_failed(hook, "a", events, 503, "answered 503", 100.0, lambda n: 10.0 * n)
        )
        assert made == attempt
    state = run(meta.webhook(hook))
    assert state.attempts == WEBHOOK_DELIVERIES_KEPT + 4
    assert state.next_attempt_at == 100.0 + 10.0 * state.attempts
    assert state.last_error == "answered 503" and state.pending == 1
    assert run(meta.due_webhooks("a", 101.0)) == []  # not due before its retry time
    log = run(meta.webhook_deliveries(hook, 1000))
    assert len(log) == WEBHOOK_DELIVERIES_KEPT
    assert log[0].attempt == WEBHOOK_DELIVERIES_KEPT + 4  # newest first
    assert log[0].first_event == events[0].event_id and log[0].status == 503
    assert run(meta.events_delivered(hook, "a", events, 204, 200.0))
    state = run(meta.webhook(hook))
    assert state.attempts == 0 and state.last_error is None and state.last_status == 204


def test_removing_a_webhook_drops_its_events(meta, run) -> None:
    hook = run(meta.add_webhook(EVERYTHING, "s3cret-value", 1.0))
    other = run(meta.add_webhook(EVERYTHING, "s3cret-value", 1.0))
    push(meta, run, "acme/app", digest(10), ["v1"])
    assert run(meta.remove_webhook(hook))
    assert not run(meta.remove_webhook(hook))
    assert run(meta.webhook(hook)) is None
    assert run(meta.pending_events(hook, 10)) == []
    assert [h.id for h in run(meta.webhooks())] == [other]
    assert len(run(meta.pending_events(other, 10))) == 1


def test_pulls_are_written_in_batches(meta, run) -> None:
    hook = run(
        meta.add_webhook(
            WebhookSpec("http://hooks.example/p", "distribution", "*", ("pull",)), "s3cret-x", 1.0
        )
    )
    pulls = [("acme/app", "pull", {"digest": digest(n), "timestamp": 5.0 + n}) for n in range(3)]
    assert run(meta.record_events(pulls, 50.0)) == 3
    events = run(meta.pending_events(hook, 2))
    assert [e.fields["digest"] for e in events] == [digest(0), digest(1)]
    assert events[0].fields["timestamp"] == 5.0  # when it happened


def test_what_the_registry_deletes_by_itself_is_reported_too(meta, run) -> None:
    hook = run(meta.add_webhook(EVERYTHING, "s3cret-value", 1.0))
    push(meta, run, "acme/app", digest(10), ["old"])
    (pushed,) = [p for p in run(meta.pushed_tags("acme")) if p.tag == "old"]
    assert run(meta.expire_tag("acme/app", "old", pushed.pushed_at))  # a retention policy
    collected = run(meta.collect_untagged([("acme/app", digest(10))], 1e12, []))  # untagged gc
    assert [c[1] for c in collected] == [digest(10)]
    assert actions(run(meta.pending_events(hook, 100)))[1:] == [
        ("acme/app", "delete", "old", None),
        ("acme/app", "delete", None, digest(10)),
    ]


def test_a_released_lease_is_taken_at_once(meta, run) -> None:
    hook = run(meta.add_webhook(EVERYTHING, "s3cret-value", 1.0))
    assert run(meta.claim_webhook(hook, "a", 100.0, 1e12))
    run(meta.release_webhook(hook, "b"))  # not b's to release
    assert not run(meta.claim_webhook(hook, "b", 101.0, 1e12))
    run(meta.release_webhook(hook, "a"))  # a shuts down
    assert run(meta.claim_webhook(hook, "b", 101.0, 1e12))
