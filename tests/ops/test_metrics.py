"""`/metrics`: one scrape adds up every worker, exactly, through worker deaths; labels stay
bounded; administrators only on the main listener, anyone on `--metrics-listen`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from dockyard.service.metrics import FLUSH_SECONDS
from tests.auth.conftest import QUIET
from tests.auth.helpers import ADMIN_PASSWORD, AuthRegistry, basic, code_of
from tests.proxy.helpers import start_cache
from tests.support.push import image_manifest, push_image, push_manifest
from tests.support.server import RunningRegistry, free_port, wait_for_http

MANIFESTS = "/v2/{name:path}/manifests/{reference}"
UPLOADS = "/v2/{name:path}/blobs/uploads/"


def scrape(url: str, **kwargs: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape, parsed by the client library's own parser."""
    response = httpx.get(url, timeout=30.0, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def settled(url: str, name: str, labels: dict[str, str], expected: float) -> dict:
    """A scrape once `name{labels}` reached `expected` (workers hand their counts in once a
    second), checked again a flush later: it must stay exactly there, never overshoot."""
    deadline = time.monotonic() + 15
    while True:
        samples = scrape(url)
        if value(samples, name, **labels) >= expected:
            break
        assert time.monotonic() < deadline, (value(samples, name, **labels), expected)
        time.sleep(0.2)
    time.sleep(FLUSH_SECONDS + 0.5)
    samples = scrape(url)
    assert value(samples, name, **labels) == expected
    return samples


def per_worker(folder: Path, tmp_path: Path, name: str, labels: dict[str, str]) -> list[float]:
    """`name{labels}` in each worker's own counter file, read by the library's collector."""
    found = []
    tmp_path.mkdir()
    for counters in sorted(folder.glob("*/counter_*.db")):
        alone = tmp_path / counters.name
        alone.mkdir()
        shutil.copy(counters, alone / counters.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        got = registry.get_sample_value(name, labels)
        found.append(got or 0.0)
    return found


def workers_of(server: RunningRegistry) -> list[int]:
    assert server.proc is not None
    pid = server.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children]


def wait_for_workers(server: RunningRegistry, count: int, old: set[int] = frozenset()) -> list[int]:  # type: ignore[assignment]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pids = workers_of(server)
        if len(pids) == count and not old & set(pids):
            return pids
        time.sleep(0.1)
    raise AssertionError(f"workers did not come up: {workers_of(server)}")


def fresh(url: str) -> httpx.Client:
    """A client that opens a new connection per request, so the kernel spreads requests over
    the workers (each binds the port with SO_REUSEPORT)."""
    return httpx.Client(base_url=url, timeout=30.0, headers={"Connection": "close"})


def test_counts_add_up_across_two_workers_and_survive_a_dead_worker(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    metrics_port = free_port()
    server = start_registry(
        "--workers", "2", "--metrics-listen", f"127.0.0.1:{metrics_port}", "--no-gc"
    )
    scrape_url = f"http://127.0.0.1:{metrics_port}/metrics"
    wait_for_workers(server, 2)
    pushes = 12
    manifest_bytes = 0
    with fresh(server.url) as client:
        for i in range(pushes):
            body = image_manifest(client, f"ops/push-{i}")
            push_manifest(client, f"ops/push-{i}", "v1", body)
            manifest_bytes += len(body)
        # 200 distinct repository names: one route template, never 200 label values.
        for i in range(200):
            name = f"ops/absent-{i}-{uuid.uuid4().hex[:6]}"
            assert client.get(f"/v2/{name}/manifests/x").status_code == 404

    put = {"route": MANIFESTS, "method": "PUT", "status": "201"}
    samples = settled(scrape_url, "dockyard_http_requests_total", put, pushes)
    assert value(samples, "dockyard_workers") == 2
    # A config and a layer per image, each one monolithic POST.
    post = {"route": UPLOADS, "method": "POST", "status": "201"}
    assert value(samples, "dockyard_http_requests_total", **post) == 2 * pushes
    missing = {"route": MANIFESTS, "method": "GET", "status": "404"}
    assert value(samples, "dockyard_http_requests_total", **missing) == 200
    assert value(samples, "dockyard_http_received_bytes_total", route=MANIFESTS) == manifest_bytes
    durations = {"route": MANIFESTS, "method": "PUT"}
    assert value(samples, "dockyard_http_request_duration_seconds_count", **durations) == pushes
    # Both workers answered, and the scrape is the sum of their own files.
    missing_total = "dockyard_http_requests_total"
    shares = per_worker(server.data_dir / "metrics", tmp_path / "one", missing_total, missing)
    assert len(shares) == 2 and all(share > 0 for share in shares), shares
    assert sum(shares) == 200
    # Label values are route templates and methods, never a repository name.
    routes = {dict(labels).get("route") for (_, labels) in samples}
    assert not any(r and "absent-" in r for r in routes)
    assert len(routes) < 12, routes

    # A worker killed: its counts stay, the respawned one adds to them, nothing doubles.
    before = set(workers_of(server))
    os.kill(sorted(before)[0], signal.SIGKILL)
    wait_for_workers(server, 2, old={sorted(before)[0]})
    wait_for_http(server.url + "/v2/")
    with fresh(server.url) as client:
        for i in range(pushes):
            body = image_manifest(client, f"ops/again-{i}")
            push_manifest(client, f"ops/again-{i}", "v1", body)
    samples = settled(scrape_url, "dockyard_http_requests_total", put, 2 * pushes)
    assert value(samples, "dockyard_http_requests_total", **post) == 4 * pushes
    assert value(samples, "dockyard_workers") == 2
    assert value(samples, "dockyard_process_resident_memory_bytes") > 0


def test_metrics_need_an_administrator_on_the_main_listener(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    metrics_port = free_port()
    registry = AuthRegistry(
        start_registry(
            "--auth",
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
            env={**QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
        )
    )
    registry.add_user("watcher", "watcher-Pa55word")
    anonymous = httpx.get(registry.url + "/metrics")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == registry.challenge()
    other = httpx.get(
        registry.url + "/metrics", headers={"Authorization": basic("watcher", "watcher-Pa55word")}
    )
    assert other.status_code == 403
    assert code_of(other) == "DENIED"
    wrong = httpx.get(
        registry.url + "/metrics", headers={"Authorization": basic("admin", "not-the-password")}
    )
    assert wrong.status_code == 401
    time.sleep(FLUSH_SECONDS + 0.5)  # every worker handed its counts in
    samples = scrape(
        registry.url + "/metrics", headers={"Authorization": basic("admin", ADMIN_PASSWORD)}
    )
    refused = {"route": "/metrics", "method": "GET"}
    assert value(samples, "dockyard_http_requests_total", status="401", **refused) == 2
    assert value(samples, "dockyard_http_requests_total", status="403", **refused) == 1
    # The separate listener: no authentication, /metrics only.
    samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    assert value(samples, "dockyard_http_requests_total", status="403", **refused) == 1
    assert httpx.get(f"http://127.0.0.1:{metrics_port}/v2/").status_code == 404


def test_no_metrics_switch(start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry("--no-metrics")
    assert httpx.get(server.url + "/metrics").status_code == 404
    assert not (server.data_dir / "metrics").exists()
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_gc_reclaims_are_counted(start_registry: Callable[..., RunningRegistry]) -> None:
    # A grace of a few seconds: the blobs must outlive the push of the manifest naming them.
    server = start_registry("--gc-grace-seconds", "3", "--gc-interval", "0.3", "--workers", "1")
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        body = image_manifest(client, "ops/gc", layers=2)
        digest = push_manifest(client, "ops/gc", "v1", body)
        assert client.delete(f"/v2/ops/gc/manifests/{digest}").status_code == 202
    deadline = time.monotonic() + 30
    while True:
        samples = scrape(server.url + "/metrics")
        # The config, the two layers and the manifest's own bytes: the collector may take
        # them in more than one batch.
        blobs = value(samples, "dockyard_gc_reclaimed_items_total", kind="blobs")
        if blobs >= 3 and value(samples, "dockyard_gc_reclaimed_bytes_total") >= len(body) + 512:
            break
        assert time.monotonic() < deadline, samples
        time.sleep(0.3)
    assert value(samples, "dockyard_gc_runs_total") >= 1
    assert value(samples, "dockyard_gc_reclaimed_bytes_total") >= len(body) + 2 * 256
    assert value(samples, "dockyard_metadata_transaction_seconds_count", kind="write") > 0


def test_metrics_folder_is_private(start_registry: Callable[..., RunningRegistry]) -> None:
    server = start_registry("--workers", "2")
    # Both workers started: granian waits forever for one stopped while it starts.
    deadline = time.monotonic() + 30
    while server.log().count("Started worker") < 2:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    folders = list((server.data_dir / "metrics").iterdir())
    assert len(folders) == 1
    assert (server.data_dir / "metrics").stat().st_mode & 0o777 == 0o700
    assert folders[0].stat().st_mode & 0o777 == 0o700
    server.stop()
    assert not folders[0].exists()  # removed when the server stops


def test_pull_through_cache_hits_misses_and_upstream_errors(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    upstream = start_registry()
    with httpx.Client(base_url=upstream.url, timeout=30.0) as client:
        digest, body = push_image(client, "lib/app", "v1")
    layer = json.loads(body)["layers"][0]["digest"]
    cache = start_cache(start_registry, upstream.url, "--workers", "1")
    with httpx.Client(base_url=cache.url, timeout=30.0) as client:
        for reference in ("v1", "v1", digest):  # fetched, then held (tag fresh), then held
            assert client.get(f"/v2/up/lib/app/manifests/{reference}").status_code == 200
        lookups = "dockyard_cache_requests_total"
        # Downloaded through, then held once the download was kept (just after the answer).
        deadline = time.monotonic() + 15
        gets = 0
        while True:
            assert client.get(f"/v2/up/lib/app/blobs/{layer}").status_code == 200
            gets += 1
            samples = scrape(cache.url + "/metrics")
            if value(samples, lookups, kind="blob", result="hit"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert value(samples, lookups, kind="manifest", result="miss") == 1
        assert value(samples, lookups, kind="manifest", result="hit") == 2
        assert gets >= 2
        assert value(samples, lookups, kind="blob", result="miss") == gets - 1
        assert value(samples, "dockyard_cache_upstream_errors_total", upstream="up") == 0
        upstream.stop()
        assert client.get("/v2/up/lib/app/manifests/v2").status_code >= 500
        samples = scrape(cache.url + "/metrics")
        assert value(samples, "dockyard_cache_upstream_errors_total", upstream="up") >= 1
        assert value(samples, lookups, kind="manifest", result="miss") == 2


def _stalled_patch(url: str, location: str, release: threading.Event) -> threading.Thread:
    """A PATCH whose body stops after its first KiB until `release` is set."""

    def body() -> Iterator[bytes]:
        yield b"x" * 1024
        release.wait(30)
        yield b"y" * 1024

    def send() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.patch(url + location, content=body(), timeout=30.0)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def wait_for_value(url: str, name: str, expected: float) -> None:
    deadline = time.monotonic() + 15
    while value(scrape(url), name) != expected:
        assert time.monotonic() < deadline, (name, value(scrape(url), name), expected)
        time.sleep(0.1)


def test_uploads_in_flight_counts_across_workers_and_forgets_killed_ones(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    metrics_port = free_port()
    server = start_registry("--workers", "2", "--metrics-listen", f"127.0.0.1:{metrics_port}")
    scrape_url = f"http://127.0.0.1:{metrics_port}/metrics"
    wait_for_workers(server, 2)
    in_flight = "dockyard_uploads_in_flight"
    with fresh(server.url) as client:
        locations = [
            client.post(f"/v2/ops/slow-{i}/blobs/uploads/").headers["location"] for i in range(3)
        ]
    release = threading.Event()
    threads = [_stalled_patch(server.url, location, release) for location in locations[:2]]
    wait_for_value(scrape_url, in_flight, 2)
    # The two stalled uploads' connections, whichever worker holds them.
    assert value(scrape(scrape_url), "dockyard_open_connections") >= 2
    release.set()
    for thread in threads:
        thread.join(30)
    wait_for_value(scrape_url, in_flight, 0)

    # An upload in progress in a worker that is killed: not counted forever.
    release = threading.Event()
    thread = _stalled_patch(server.url, locations[2], release)
    wait_for_value(scrape_url, in_flight, 1)
    old = set(workers_of(server))
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    wait_for_workers(server, 2, old=old)
    release.set()
    thread.join(30)
    wait_for_value(scrape_url, in_flight, 0)


def test_metrics_listen_refuses_the_listen_port_and_a_taken_one(tmp_path: Path) -> None:
    port = free_port()

    def serve(metrics_listen: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(sys.executable, "-m", "dockyard", "serve", "--listen", f"127.0.0.1:{port}"),
                *("--data-dir", str(tmp_path / "data"), "--metrics-listen", metrics_listen),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    same = serve(f"127.0.0.1:{port}")
    assert same.returncode == 2
    assert "metrics_listen needs a port of its own" in same.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = serve(f"127.0.0.1:{taken.getsockname()[1]}")
    assert busy.returncode == 1
    assert "cannot listen on 127.0.0.1:" in busy.stderr and "for metrics" in busy.stderr
    assert not list((tmp_path / "data" / "metrics").iterdir())
