"""An upstream that rate-limits (429 with Retry-After) or hangs: cached content is still served,
the Retry-After is respected before asking again, and a hanging upstream is given up on after
the configured `timeout_seconds`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.proxy.helpers import (
    ACCEPT,
    Upstream,
    error_of,
    get_manifest,
    make_image,
    pull,
    start_cache,
)
from tests.support.flaky_proxy import FlakyProxy, Injected

REPO = "library/app"
CACHED = f"up/{REPO}"


def test_rate_limited_upstream_cached_tag_served_retry_after_respected(
    up: Upstream, start_registry, tmp_path: Path
) -> None:
    cached, uncached = make_image(tmp_path, "cached"), make_image(tmp_path, "uncached")
    up.push_image(REPO, "v1", cached)
    up.push_image(REPO, "v2", uncached)
    # Dockyard -> FlakyProxy (answers 429 when told) -> CountingProxy -> Distribution. Two
    # workers, and every request below on a new connection: whichever worker answers, it
    # knows what the upstream said to the other.
    with FlakyProxy(up.proxy.port) as flaky:
        cache = start_cache(start_registry, f"http://{flaky.host}", "--workers", "2", ttl_seconds=1)
        with httpx.Client(base_url=cache.url, timeout=60) as http:
            pull(http, CACHED, "v1")
            time.sleep(1.2)
            flaky.inject.append(Injected(429, {"Retry-After": "600"}))
            stale = pull(http, CACHED, "v1")
            assert flaky.injected_done == 1
            # The image it holds is served (stale, announced), not the upstream's 429.
            assert stale.digest == cached.manifest_digest
            assert stale.headers.get("warning", "").startswith("110 ")

            # What it does not hold: 429 with a Retry-After, and the upstream left alone.
            up.proxy.reset()
            answers = {}
            for attempt in range(3):
                with httpx.Client(base_url=cache.url, timeout=60) as fresh:
                    answers[f"tag {attempt}"] = get_manifest(fresh, CACHED, "v2")
                with httpx.Client(base_url=cache.url, timeout=60) as fresh:
                    answers[f"digest {attempt}"] = get_manifest(
                        fresh, CACHED, uncached.manifest_digest
                    )
                with httpx.Client(base_url=cache.url, timeout=60) as fresh:
                    answers[f"blob {attempt}"] = fresh.get(
                        f"/v2/{CACHED}/blobs/{uncached.layers[0].digest}"
                    )
                with httpx.Client(base_url=cache.url, timeout=60) as fresh:
                    answers[f"blob head {attempt}"] = fresh.head(
                        f"/v2/{CACHED}/blobs/{uncached.config_digest}"
                    )
    assert up.proxy.paths() == [], "the upstream was asked again within its Retry-After"
    for what, resp in answers.items():
        assert resp.status_code == 429, f"{what}: {resp.status_code} {resp.text}"
        assert int(resp.headers["retry-after"]) > 0, what
        if not what.startswith("blob head"):
            assert error_of(resp)["code"] == "TOOMANYREQUESTS", what


def test_hanging_upstream_is_given_up_on_after_timeout_seconds(
    up: Upstream, start_registry, tmp_path: Path
) -> None:
    cached, uncached = make_image(tmp_path, "cached"), make_image(tmp_path, "uncached")
    up.push_image(REPO, "v1", cached)
    up.push_image(REPO, "v2", uncached)
    cache = start_cache(start_registry, up.url, ttl_seconds=1, timeout_seconds=1)
    # Every wait below is bounded by this client's timeout; the server must answer first.
    with httpx.Client(base_url=cache.url, timeout=45) as http:
        pull(http, CACHED, "v1")
        time.sleep(1.2)
        up.proxy.hang = True  # connections stay open, nothing is ever answered
        stale = pull(http, CACHED, "v1")
        assert stale.digest == cached.manifest_digest
        assert stale.headers.get("warning", "").startswith("110 ")
        missing = http.get(f"/v2/{CACHED}/manifests/v2", headers={"Accept": ACCEPT})
    assert up.proxy.matching("HEAD", f"/v2/{REPO}/manifests/v1")  # it did try
    assert missing.status_code == 503, missing.text
    assert error_of(missing)["code"] == "UNAVAILABLE"
