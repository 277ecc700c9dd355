"""Cold and warm pulls, pulls while the upstream is down, TTL revalidation, stale tags, and
fetching only what is asked for."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.proxy.helpers import (
    ACCEPT,
    Shared,
    Upstream,
    error_of,
    make_image,
    make_index,
    pull,
    start_cache,
    unique,
)

REPO = "library/app"
CACHED = f"up/{REPO}"


def test_cold_pull_then_warm_pull_asks_the_upstream_nothing(shared: Shared, tmp_path: Path) -> None:
    up, repo = shared.up, unique("library")
    image = make_image(tmp_path, "warm")
    digest = up.push_image(repo, "v1", image)

    with httpx.Client(base_url=shared.cache.url, timeout=60) as http:
        cold = pull(http, f"up/{repo}", "v1")
        assert cold.digest == digest == image.manifest_digest
        assert cold.manifest == image.manifest_bytes
        assert cold.blobs == {
            image.config_digest: image.config_bytes,
            **{layer.digest: layer.compressed for layer in image.layers},
        }
        # The cold pull went to the upstream, once per object.
        for blob in image.blob_digests:
            assert len(up.proxy.matching("GET", f"/v2/{repo}/blobs/{blob}")) == 1

        up.proxy.reset()
        warm = pull(http, f"up/{repo}", "v1")
        by_digest = pull(http, f"up/{repo}", digest)
        heads = [http.head(f"/v2/up/{repo}/blobs/{d}") for d in image.blob_digests]

    assert warm.manifest == cold.manifest and warm.blobs == cold.blobs
    assert by_digest.manifest == cold.manifest
    assert [h.status_code for h in heads] == [200] * len(heads)
    assert up.proxy.paths() == [], "a warm pull within the TTL must not reach the upstream"


def test_upstream_stopped_cached_image_served_uncached_one_a_clear_503(
    up: Upstream, start_registry, tmp_path: Path
) -> None:
    cached, missing = make_image(tmp_path, "cached"), make_image(tmp_path, "missing")
    digest = up.push_image(REPO, "v1", cached)
    up.push_image(REPO, "v2", missing)
    cache = start_cache(start_registry, up.url)
    with httpx.Client(base_url=cache.url, timeout=60) as http:
        first = pull(http, CACHED, "v1")
        up.stop()
        again = pull(http, CACHED, "v1")
        by_digest = pull(http, CACHED, digest)
        # Nothing of v2 is cached: every way of asking for it is a clear 503 (asked in
        # parallel: each may wait out the server's retries).
        with ThreadPoolExecutor(3) as pool:
            answers = list(
                pool.map(
                    lambda path: http.get(path, headers={"Accept": ACCEPT}),
                    [
                        f"/v2/{CACHED}/manifests/v2",
                        f"/v2/{CACHED}/manifests/{missing.manifest_digest}",
                        f"/v2/{CACHED}/blobs/{missing.layers[0].digest}",
                    ],
                )
            )
    assert again.manifest == first.manifest == cached.manifest_bytes
    assert again.blobs == first.blobs
    assert by_digest.manifest == cached.manifest_bytes
    assert "warning" not in again.headers  # within the TTL: fresh, not stale
    for resp in answers:
        assert resp.status_code == 503, f"{resp.request.url}: {resp.status_code} {resp.text}"
        error = error_of(resp)
        assert error["code"] == "UNAVAILABLE"
        assert error["message"].startswith("up "), error["message"]  # names the upstream


def test_tag_is_revalidated_after_its_ttl_then_served_stale_when_the_upstream_is_down(
    up: Upstream, start_registry, tmp_path: Path
) -> None:
    old, new = make_image(tmp_path, "old"), make_image(tmp_path, "new")
    up.push_image(REPO, "v1", old)
    cache = start_cache(start_registry, up.url, ttl_seconds=1)
    with httpx.Client(base_url=cache.url, timeout=60) as http:
        assert pull(http, CACHED, "v1").digest == old.manifest_digest

        # Past the TTL, unchanged upstream: one HEAD, no manifest download.
        time.sleep(1.2)
        up.proxy.reset()
        assert pull(http, CACHED, "v1").digest == old.manifest_digest
        assert [p.split(" ")[0] for p in up.proxy.paths() if "/manifests/" in p] == ["HEAD"]

        # Re-pushed upstream: the next pull past the TTL serves the new image.
        up.push_image(REPO, "v1", new)
        time.sleep(1.2)
        up.proxy.reset()
        repulled = pull(http, CACHED, "v1")
        assert repulled.digest == new.manifest_digest
        assert repulled.manifest == new.manifest_bytes
        assert "warning" not in repulled.headers
        assert up.proxy.matching("HEAD", f"/v2/{REPO}/manifests/v1")
        assert up.proxy.matching("GET", f"/v2/{REPO}/manifests/{new.manifest_digest}")
        # The old image stays pullable by digest, from the cache.
        up.proxy.reset()
        assert pull(http, CACHED, old.manifest_digest).manifest == old.manifest_bytes
        assert up.proxy.paths() == []

        # The upstream goes down: past the TTL the tag is served stale, with a Warning.
        up.stop()
        time.sleep(1.2)
        stale = pull(http, CACHED, "v1")
        head = http.head(f"/v2/{CACHED}/manifests/v1", headers={"Accept": ACCEPT})
    assert stale.digest == new.manifest_digest
    assert stale.headers.get("warning", "").startswith("110 "), stale.headers
    assert head.status_code == 200, head.headers
    assert head.headers.get("warning", "").startswith("110 ")


def test_one_platform_of_an_index_fetches_nothing_of_the_other(
    shared: Shared, tmp_path: Path
) -> None:
    up, repo = shared.up, unique("library")
    index = make_index(tmp_path, "multi")
    up.push_index(repo, "v1", index)
    amd64, arm64 = index.child("amd64"), index.child("arm64")
    up.proxy.reset()
    with httpx.Client(base_url=shared.cache.url, timeout=60) as http:
        top = pull(http, f"up/{repo}", "v1")
        assert top.digest == index.index_digest
        entries = {
            m["platform"]["architecture"]: m["digest"]
            for m in json.loads(top.manifest)["manifests"]
        }
        child = pull(http, f"up/{repo}", entries["amd64"])
    assert child.manifest == amd64.manifest_bytes
    assert set(child.blobs) == set(amd64.blob_digests)

    seen = " ".join(up.proxy.paths())
    for digest in [arm64.manifest_digest, *arm64.blob_digests]:
        assert digest not in seen, f"{digest} (linux/arm64) was fetched from the upstream"
    for digest in [amd64.manifest_digest, *amd64.blob_digests]:
        assert digest in seen
