"""The pure rules of event delivery: the retry delays (exponential, capped, jittered over the
upper half), the signature a receiver checks, the filters, the addresses refused, and the
count a pull event carries in both formats."""

from __future__ import annotations

import hashlib
import hmac

from dockyard.metadata.events import wants
from dockyard.service.event_formats import cloudevent, distribution_event
from dockyard.service.event_signing import signature, signed_headers
from dockyard.service.events import retry_delay
from dockyard.service.webhook_urls import refused


def test_retry_delays_double_up_to_the_ceiling_with_jitter() -> None:
    delay = retry_delay(2.0, 60.0)
    for attempts, bound in [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (400, 60.0)]:
        seen = [delay(attempts) for _ in range(200)]
        assert all(bound / 2 <= d <= bound for d in seen), attempts
        assert len(set(seen)) > 1  # jittered, not one fixed value


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"events":[]}'
    expected = hmac.new(b"k3y-secret", b"1767229200." + body, hashlib.sha256).hexdigest()
    assert signature("k3y-secret", 1767229200, body) == "sha256=" + expected
    assert signature("k3y-secret", 1767229201, body) != signature("k3y-secret", 1767229200, body)
    headers = signed_headers("k3y-secret", 1767229200, body, "event-1")
    assert headers == {
        "Dockyard-Timestamp": "1767229200",
        "Dockyard-Signature": "sha256=" + expected,
        "Dockyard-Event-Id": "event-1",
    }


def test_filters() -> None:
    assert wants("*", "push,delete", "a/b/c", "push")
    assert wants("acme/*", "push", "acme/team/app", "push")
    assert not wants("acme/*", "push", "acme", "push")
    assert not wants("acme/*", "push", "other/app", "push")
    assert not wants("*", "push,delete", "a/b", "pull")
    assert not wants("*", "push", "a/b", "pus")  # whole actions only


def test_refused_addresses() -> None:
    for address in (
        "127.0.0.1",
        "127.8.9.10",
        "::1",
        "169.254.169.254",
        "fe80::1%eth0",
        "::ffff:127.0.0.1",
        "0.0.0.0",
        "::",
    ):
        assert refused(address), address
    for address in ("192.0.2.10", "10.0.0.1", "2001:db8::1", "::ffff:192.0.2.1"):
        assert not refused(address), address


def test_a_pull_event_carries_its_count_in_both_formats() -> None:
    pull = {
        "id": "e-1",
        "timestamp": 1767229200.5,
        "action": "pull",
        "repository": "acme/app",
        "digest": "sha256:" + "a" * 64,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "size": 10,
        "tag": "v1",
        "count": 42,
        "origin": {"actor": "alice", "request_id": "r", "addr": "10.0.0.1:5", "method": "GET"},
    }
    base = "https://registry.example"
    envelope = distribution_event(pull, base, "0.0.0.0:5000", "instance")
    assert envelope["count"] == 42 and envelope["actor"] == {"name": "alice"}
    assert cloudevent(pull, base)["data"]["count"] == 42
    push = {k: v for k, v in pull.items() if k != "count"} | {"action": "push"}
    assert "count" not in distribution_event(push, base, "0.0.0.0:5000", "instance")
    assert "count" not in cloudevent(push, base)["data"]
