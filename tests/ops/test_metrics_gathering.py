"""Observations gathered between flushes reach the library exactly as one-by-one updates
would: the same buckets, sum and count, the same counter totals."""

from __future__ import annotations

import random

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from dockyard.cli.metrics_serving import _public
from dockyard.service.metrics import REQUEST_BUCKETS, Metrics, _gather, _observe_many


def test_gathered_observations_match_one_by_one() -> None:
    rng = random.Random(20)
    values = [rng.choice(REQUEST_BUCKETS) for _ in range(50)]  # on the bounds themselves
    values += [rng.uniform(0, 100) for _ in range(500)]  # past the last bound too
    registry = CollectorRegistry()
    one = Histogram("one_seconds", "x", buckets=REQUEST_BUCKETS, registry=registry)
    many = Histogram("many_seconds", "x", buckets=REQUEST_BUCKETS, registry=registry)
    gathered: dict[str, list[float]] = {}
    for v in values:
        one.observe(v)
        _gather(gathered, "k", REQUEST_BUCKETS, v)
    _observe_many(many, gathered["k"])
    text = "\n".join(
        line
        for line in generate_latest(registry).decode().splitlines()
        if not line.startswith("#") and "_created" not in line
    )
    lines = {line.replace("many_", "one_") for line in text.splitlines() if "many_" in line}
    expected = {line for line in text.splitlines() if "one_" in line}
    assert len(expected) == len(REQUEST_BUCKETS) + 3  # buckets, +Inf, count and sum
    assert lines == expected


def test_request_counts_reach_the_library_at_flush() -> None:
    metrics = Metrics()
    for status in (200, 200, 404, 429):
        metrics.request_done("/v2/{name:path}/manifests/{reference}", "GET", status, 0.002, 0, 10)
    route = {"route": "/v2/{name:path}/manifests/{reference}", "method": "GET"}
    get = metrics.registry.get_sample_value
    assert get("dockyard_http_requests_total", {**route, "status": "200"}) is None  # not yet
    assert get("dockyard_rate_limit_refusals_total", {"route": route["route"]}) == 1  # at once
    metrics.flush()
    assert get("dockyard_http_requests_total", {**route, "status": "200"}) == 2
    assert get("dockyard_http_requests_total", {**route, "status": "404"}) == 1
    assert get("dockyard_http_request_duration_seconds_count", route) == 4
    assert get("dockyard_http_sent_bytes_total", {"route": route["route"]}) == 40
    metrics.transaction_done("write", 0.01, 2)
    metrics.flush()
    metrics.flush()  # nothing twice
    assert get("dockyard_metadata_transaction_retries_total", {}) == 2
    assert get("dockyard_metadata_transaction_seconds_count", {"kind": "write"}) == 1


def test_a_metrics_listener_open_beyond_private_networks_is_told_apart() -> None:
    for host in ("", "0.0.0.0", "::", "8.8.8.8", "2001:4860:4860::8888"):
        assert _public(host), host
    for host in ("127.0.0.1", "::1", "10.1.2.3", "192.168.0.9", "fd00::1", "metrics.internal"):
        assert not _public(host), host
