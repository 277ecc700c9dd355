"""Concurrent misses for one blob: one upstream request, bytes streamed while they arrive,
clients that leave early, and downloads that fail upstream."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.proxy.helpers import Shared, Upstream, push_blob, sha256, start_cache, unique
from tests.support.counting_proxy import Rule

REPO = "big/blob"
CACHED = f"up/{REPO}"
MiB = 1024 * 1024


@dataclass
class Download:
    status: int | None = None
    first_byte: float | None = None
    size: int = 0
    digest: str | None = None
    error: str | None = None


def fetch(
    url: str, *, stop_after: int | None = None, barrier: threading.Barrier | None = None
) -> Download:
    """GET a blob, hashing as it streams; `stop_after` bytes: hang up there."""
    result = Download()
    hasher = hashlib.sha256()
    with httpx.Client(timeout=120) as http:
        if barrier is not None:
            barrier.wait()
        try:
            with http.stream("GET", url) as resp:
                result.status = resp.status_code
                if resp.status_code != 200:
                    result.error = resp.read().decode(errors="replace")
                    return result
                for chunk in resp.iter_raw():
                    if result.first_byte is None:
                        result.first_byte = time.monotonic()
                    hasher.update(chunk)
                    result.size += len(chunk)
                    if stop_after is not None and result.size >= stop_after:
                        return result  # leaving the block closes the connection mid-body
        except httpx.HTTPError as exc:
            result.error = repr(exc)
            return result
    result.digest = "sha256:" + hasher.hexdigest()
    return result


def run_clients(count: int, url: str, **kwargs: object) -> list[Download]:
    results: list[Download | None] = [None] * count
    barrier = threading.Barrier(count)

    def one(i: int) -> None:
        results[i] = fetch(url, barrier=barrier, **kwargs)  # type: ignore[arg-type]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert all(r is not None for r in results), "a client thread did not finish"
    return results  # type: ignore[return-value]


def leftovers(data_dir: Path) -> list[str]:
    """Files a finished download must not leave behind (partial uploads, size files)."""
    found = []
    for folder in (data_dir / "uploads", data_dir / "proxy"):
        if folder.exists():
            found += [str(p) for p in folder.rglob("*") if p.is_file() and p.suffix != ".lock"]
    return found


def wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_twenty_concurrent_misses_cause_one_upstream_get(shared: Shared) -> None:
    up, cache, repo = shared.up, shared.cache, unique("big")
    data = os.urandom(100 * MiB)
    with up.client() as http:
        digest = push_blob(http, repo, data)
    # The upstream sends it slowly (~3 s), so the clients join a download in progress.
    up.proxy.throttle = Rule("GET", f"/blobs/{digest}")
    up.proxy.rate = 35 * MiB
    url = f"{cache.url}/v2/up/{repo}/blobs/{digest}"

    # 21 clients at once; one of them hangs up after the first MiB.
    results: list[Download | None] = [None] * 21
    barrier = threading.Barrier(21)

    def client(i: int) -> None:
        results[i] = fetch(url, barrier=barrier, stop_after=MiB if i == 0 else None)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    quitter, *clients = results
    assert quitter is not None and quitter.digest is None and quitter.size >= MiB

    gets = up.proxy.matching("GET", f"/blobs/{digest}")
    assert len(gets) == 1, f"{len(gets)} upstream GETs for one blob: {up.proxy.paths()}"
    assert len(up.proxy.matching("GET", "/blobs/")) == 1
    for n, result in enumerate(clients, 1):
        assert result is not None and result.error is None, f"client {n}: {result}"
        assert result.size == len(data), f"client {n} got {result.size} bytes"
        assert result.digest == digest, f"client {n} got other bytes"

    # Streamed while arriving: a client had its first byte before the upstream was done.
    relay_done = gets[0].finished
    assert relay_done is not None
    first = min(r.first_byte for r in results if r is not None and r.first_byte is not None)
    assert first < relay_done, "no client got a byte before the upstream transfer finished"

    # Now cached: served without asking the upstream, and nothing half-written remains.
    up.proxy.reset()
    head = httpx.head(url)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)
    assert up.proxy.paths() == []
    wait_for(lambda: not leftovers(cache.data_dir), "the download's temporary files to go")


def test_a_client_hanging_up_does_not_abort_the_download(shared: Shared) -> None:
    up, cache, repo = shared.up, shared.cache, unique("big")
    data = os.urandom(4 * MiB)
    with up.client() as http:
        digest = push_blob(http, repo, data)
    up.proxy.throttle = Rule("GET", f"/blobs/{digest}")
    up.proxy.rate = 4 * MiB  # ~1 s
    url = f"{cache.url}/v2/up/{repo}/blobs/{digest}"

    # The only client (so its request started the download) leaves after the first bytes.
    quitter = fetch(url, stop_after=1)
    assert quitter.digest is None and quitter.first_byte is not None
    # The download carries on without it...
    wait_for(
        lambda: any(s.finished for s in up.proxy.matching("GET", f"/blobs/{digest}")),
        "the upstream transfer to complete",
    )
    # ...and what it cached is whole and right, served without a second upstream GET.
    later = fetch(url)
    assert later.error is None and later.digest == digest and later.size == len(data)
    gets = up.proxy.matching("GET", f"/blobs/{digest}")
    assert len(gets) == 1 and not gets[0].cut and gets[0].body_bytes == len(data)


def test_a_download_failing_upstream_leaves_nothing_half_cached(
    up: Upstream, start_registry
) -> None:
    data = os.urandom(4 * MiB)
    with up.client() as http:
        digest = push_blob(http, REPO, data)
    # The first upstream transfer is cut after 1 MiB, slowly enough for clients to join it.
    up.proxy.throttle = Rule("GET", f"/blobs/{digest}")
    up.proxy.rate = 4 * MiB
    up.proxy.cut = Rule("GET", f"/blobs/{digest}")
    up.proxy.cut_after = MiB
    cache = start_cache(start_registry, up.url)
    url = f"{cache.url}/v2/{CACHED}/blobs/{digest}"

    results = run_clients(3, url)
    assert up.proxy.cuts_done == 1
    for result in results:
        # Nobody ever gets the full length of wrong bytes: either the right blob (from a
        # retried download), a response that ends early, or (before any byte) a clean 503.
        if result.status != 200:
            assert result.status == 503, result
            assert json.loads(result.error or "")["errors"][0]["code"] == "UNAVAILABLE", result
        elif result.size == len(data):
            assert result.digest == digest and result.error is None
        else:
            assert result.digest is None, result
    assert any(r.size < len(data) for r in results), f"no client saw the failed transfer: {results}"

    # Nothing of the failed transfer is served: the next pull downloads again, correctly.
    wait_for(lambda: not leftovers(cache.data_dir), "the failed download to be cleaned up")
    later = fetch(url)
    assert later.error is None and later.digest == digest and later.size == len(data)
    complete = [s for s in up.proxy.matching("GET", f"/blobs/{digest}") if not s.cut]
    assert len(complete) == 1, up.proxy.paths()
    assert sha256(httpx.get(url).content) == digest
