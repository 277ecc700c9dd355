"""What a cold pull asks the upstream, request by request: one GET per blob and nothing else
(no HEAD before it: the GET's own Content-Length is the size announced to the clients), and a
HEAD alone for bytes this upstream already sent for another cached repository."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.proxy.helpers import Shared, make_image, pull, unique


def blob_requests(shared: Shared, repo: str) -> list[str]:
    return [p for p in shared.up.proxy.paths() if f"/v2/{repo}/blobs/" in p]


def test_a_cold_pull_sends_one_get_per_blob_and_no_head(shared: Shared, tmp_path: Path) -> None:
    repo = unique("library")
    image = make_image(tmp_path, "one-get", layers=3)
    shared.up.push_image(repo, "v1", image)

    with httpx.Client(base_url=shared.cache.url, timeout=60) as http:
        pulled = pull(http, f"up/{repo}", "v1")
        assert set(pulled.blobs) == set(image.blob_digests)
        assert sorted(blob_requests(shared, repo)) == sorted(
            f"GET /v2/{repo}/blobs/{digest}" for digest in image.blob_digests
        )

        # Kept: served again without a word to the upstream.
        shared.up.proxy.reset()
        assert pull(http, f"up/{repo}", "v1").blobs == pulled.blobs
        assert shared.up.proxy.paths() == []


def test_bytes_this_upstream_sent_for_another_repository_are_taken_on_a_head(
    shared: Shared, tmp_path: Path
) -> None:
    first, second = unique("library"), unique("library")
    image = make_image(tmp_path, "adopted")
    shared.up.push_image(first, "v1", image)
    shared.up.push_image(second, "v1", image)

    with httpx.Client(base_url=shared.cache.url, timeout=60) as http:
        pull(http, f"up/{first}", "v1")
        shared.up.proxy.reset()
        again = pull(http, f"up/{second}", "v1")
    assert set(again.blobs) == set(image.blob_digests)
    # The layers: a HEAD each and no download. (The config is small JSON, which may be a
    # manifest, so it is downloaded to tell; see ProxyService.adopt.)
    for layer in image.layers:
        assert blob_requests(shared, second).count(f"HEAD /v2/{second}/blobs/{layer.digest}") == 1
        assert f"GET /v2/{second}/blobs/{layer.digest}" not in blob_requests(shared, second)
