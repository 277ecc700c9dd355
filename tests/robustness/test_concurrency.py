"""Concurrent clients on the same blob, tag and manifest end in a consistent state."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.fsck import run_fsck
from tests.support.push import image_manifest, push_blob, push_manifest, sha256, unique_repo
from tests.support.server import RunningRegistry


def test_same_blob_uploaded_by_many_clients(registry: RunningRegistry) -> None:
    repo = unique_repo()
    blob = os.urandom(2 * 1024 * 1024)

    def upload(_: int) -> int:
        with httpx.Client(base_url=registry.url, timeout=60) as c:
            location = c.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
            resp = c.patch(location, content=blob)
            return c.put(resp.headers["Location"], params={"digest": sha256(blob)}).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(upload, range(16))) == {201}
    with httpx.Client(base_url=registry.url) as c:
        assert c.get(f"/v2/{repo}/blobs/{sha256(blob)}").content == blob
    # The session registry is shared: only what this race could have broken is asserted.
    assert " 0 bad blobs," in run_fsck(registry.data_dir).stdout


def test_same_tag_pushed_concurrently(registry: RunningRegistry, client: httpx.Client) -> None:
    repo = unique_repo()
    bodies = [image_manifest(client, repo) for _ in range(12)]

    def put(body: bytes) -> str:
        with httpx.Client(base_url=registry.url, timeout=60) as c:
            return push_manifest(c, repo, "race", body)

    with ThreadPoolExecutor(12) as pool:
        digests = set(pool.map(put, bodies))
    final = client.get(f"/v2/{repo}/manifests/race")
    assert sha256(final.content) == final.headers["Docker-Content-Digest"]
    assert final.headers["Docker-Content-Digest"] in digests
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == ["race"]


def test_concurrent_deletes(registry: RunningRegistry, client: httpx.Client) -> None:
    repo = unique_repo()
    body = image_manifest(client, repo)
    digest = push_manifest(client, repo, "gone", body)
    blob = push_blob(client, repo, b"shared blob")

    def delete(url: str) -> int:
        with httpx.Client(base_url=registry.url, timeout=60) as c:
            return c.delete(url).status_code

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(delete, [f"/v2/{repo}/manifests/{digest}"] * 8))
        blob_results = list(pool.map(delete, [f"/v2/{repo}/blobs/{blob}"] * 8))
    assert sorted(results) == [202] + [404] * 7
    assert sorted(blob_results) == [202] + [404] * 7
    assert client.get(f"/v2/{repo}/manifests/gone").status_code == 404
    assert client.get(f"/v2/{repo}/tags/list").json()["tags"] == []
