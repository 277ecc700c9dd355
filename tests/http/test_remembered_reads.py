"""Workers remember the lookups of manifest and blob reads (tag → manifest, blob links, policy)
until SQLite reports a commit: an answer acknowledged by one worker must be seen by the next
request on any worker, never an older one."""

from __future__ import annotations

import os

import httpx

from tests.support.push import image_manifest, push_blob, push_manifest, unique_repo


def fresh_get(url: str, path: str, method: str = "GET") -> httpx.Response:
    # A new connection each time: granian hands connections to either worker.
    with httpx.Client(base_url=url, timeout=30) as client:
        return client.request(
            method,
            path,
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )


def test_every_worker_sees_a_moved_tag_and_a_deleted_manifest_at_once(start_registry) -> None:
    server = start_registry("--workers", "2")
    repo = unique_repo("mem")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for round_no in range(12):
            digest = push_manifest(client, repo, "latest", image_manifest(client, repo))
            for _ in range(6):
                resp = fresh_get(server.url, f"/v2/{repo}/manifests/latest")
                assert resp.status_code == 200, resp.text
                assert resp.headers["Docker-Content-Digest"] == digest, f"round {round_no}"
                head = fresh_get(server.url, f"/v2/{repo}/manifests/latest", "HEAD")
                assert head.headers["Docker-Content-Digest"] == digest
        assert client.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
        for _ in range(6):
            assert fresh_get(server.url, f"/v2/{repo}/manifests/latest").status_code == 404
            assert fresh_get(server.url, f"/v2/{repo}/manifests/{digest}").status_code == 404


def test_every_worker_sees_a_blob_link_come_and_go(start_registry) -> None:
    server = start_registry("--workers", "2")
    repo = unique_repo("mem")
    data = os.urandom(300)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for _ in range(4):
            assert (
                fresh_get(server.url, f"/v2/{repo}/blobs/sha256:{'0' * 64}", "HEAD").status_code
                == 404
            )
        digest = push_blob(client, repo, data)
        for _ in range(6):
            resp = fresh_get(server.url, f"/v2/{repo}/blobs/{digest}", "HEAD")
            assert resp.status_code == 200
            assert resp.headers["Content-Length"] == str(len(data))
        assert client.delete(f"/v2/{repo}/blobs/{digest}").status_code == 202
        for _ in range(6):
            assert fresh_get(server.url, f"/v2/{repo}/blobs/{digest}", "HEAD").status_code == 404
