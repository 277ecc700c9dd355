"""Deleting whole repositories and reading storage usage on a registry without accounts, on both
backend pairs: an index, its children, mounted blobs and uploads all go at once, and usage counts
a blob shared by two repositories of a namespace once."""

from __future__ import annotations

import json
import threading
import uuid

import httpx

from tests.support.push import (
    OCI_INDEX,
    OCI_MANIFEST,
    descriptor,
    error_code,
    image_manifest,
    push_blob,
    push_manifest,
    sha256,
)
from tests.support.server import RunningRegistry


def test_deleting_a_repository_takes_indexes_children_tags_and_uploads(
    client: httpx.Client,
) -> None:
    namespace = f"del{uuid.uuid4().hex[:8]}"
    repo, neighbour = f"{namespace}/app", f"{namespace}/neighbour"
    child = image_manifest(client, repo)
    child_digest = push_manifest(client, repo, "amd64", child)
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [descriptor(OCI_MANIFEST, child, platform={"os": "linux"})],
        }
    ).encode()
    index_digest = push_manifest(client, repo, "latest", index, OCI_INDEX)
    layer = json.loads(child)["layers"][0]["digest"]
    mounted = client.post(f"/v2/{neighbour}/blobs/uploads/", params={"mount": layer, "from": repo})
    assert mounted.status_code == 201
    upload = client.post(f"/v2/{repo}/blobs/uploads/")
    assert upload.status_code == 202

    deleted = client.delete(f"/api/v1/repositories/{repo}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["manifests"] == 2 and deleted.json()["tags"] == 2
    assert deleted.json()["uploads"] == 1

    tags = client.get(f"/v2/{repo}/tags/list")
    assert tags.status_code == 404 and error_code(tags) == "NAME_UNKNOWN"
    catalog = client.get("/v2/_catalog").json()["repositories"]
    assert repo not in catalog and neighbour in catalog
    for reference in ("latest", "amd64", index_digest, child_digest):
        got = client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": OCI_INDEX})
        assert got.status_code == 404, reference
    assert client.get(f"/v2/{repo}/blobs/{layer}").status_code == 404
    assert client.get(upload.headers["Location"]).status_code == 404
    # The mounted layer still pulls from the repository that holds it.
    kept = client.get(f"/v2/{neighbour}/blobs/{layer}")
    assert kept.status_code == 200 and sha256(kept.content) == layer

    missing = client.delete(f"/api/v1/repositories/{repo}")
    assert missing.status_code == 404 and error_code(missing) == "NOT_FOUND"
    invalid = client.delete(f"/api/v1/repositories/{namespace}/../x")
    assert invalid.status_code in (400, 404)
    foreign = client.delete(
        f"/api/v1/repositories/{neighbour}", headers={"Origin": "https://elsewhere.example"}
    )
    assert foreign.status_code == 403 and error_code(foreign) == "DENIED"
    assert client.get(f"/v2/{neighbour}/blobs/{layer}").status_code == 200


def test_usage_counts_a_namespace_s_shared_blobs_once(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    namespace = f"use{uuid.uuid4().hex[:8]}"
    shared = uuid.uuid4().bytes * 64
    sizes = {}
    for name in ("one", "two"):
        repo = f"{namespace}/{name}"
        push_blob(client, repo, shared)
        own = uuid.uuid4().bytes * 4
        push_blob(client, repo, own)
        sizes[repo] = len(shared) + len(own)
    usage = client.get("/api/v1/usage", params={"namespace": namespace})
    assert usage.status_code == 200, usage.text
    body = usage.json()
    assert body["repositories"] == [
        {"name": repo, "blobs": 2, "bytes": size} for repo, size in sorted(sizes.items())
    ]
    assert body["namespaces"] == [
        {
            "name": namespace,
            "repositories": 2,
            "blobs": 3,
            "bytes": sum(sizes.values()) - len(shared),
            "shared_bytes": 0,
        }
    ]
    # Another namespace taking the shared blob makes it shared for both.
    push_blob(client, f"other{namespace}/x", shared)
    again = client.get("/api/v1/usage", params={"namespace": namespace}).json()
    assert again["namespaces"][0]["shared_bytes"] == len(shared)

    everything = client.get("/api/v1/usage").json()
    assert {namespace, f"other{namespace}"} <= {n["name"] for n in everything["namespaces"]}
    total, storage = everything["total"], everything["storage"]
    assert total["bytes"] >= sum(sizes.values()) - len(shared)
    if "DOCKYARD_STORAGE" in registry.env:
        assert storage == {"kind": "bucket", "used_bytes": total["bytes"], "total_bytes": None}
    else:
        assert storage["kind"] == "filesystem"
        assert 0 < storage["used_bytes"] <= storage["total_bytes"]

    assert client.delete(f"/api/v1/repositories/{namespace}/one").status_code == 200
    after = client.get("/api/v1/usage", params={"namespace": namespace}).json()
    assert [r["name"] for r in after["repositories"]] == [f"{namespace}/two"]
    assert after["namespaces"][0]["repositories"] == 1
    nobody = client.get("/api/v1/usage", params={"namespace": f"none{namespace}"}).json()
    assert nobody == {"namespaces": [], "repositories": []}
    for bad in ("UPPER", "a\x00b", "x" * 300, "..", ""):
        refused = client.get("/api/v1/usage", params={"namespace": bad})
        assert refused.status_code == 400 and error_code(refused) == "NAME_INVALID", bad


def test_concurrent_deletions_of_one_repository_delete_it_once(client: httpx.Client) -> None:
    repo = f"twice{uuid.uuid4().hex[:8]}/app"
    push_blob(client, repo, uuid.uuid4().bytes)
    statuses: list[int] = []
    start = threading.Barrier(4)

    def delete(url: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            start.wait()
            statuses.append(c.delete(f"/api/v1/repositories/{repo}").status_code)

    threads = [threading.Thread(target=delete, args=(str(client.base_url),)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200, 404, 404, 404]


def test_pushes_racing_deletions_fail_or_land_whole(registry: RunningRegistry) -> None:
    """Three pushers into one repository while it is deleted over and over: each push fails
    with a client error or lands, and every tag left afterwards pulls completely."""
    repo = f"race{uuid.uuid4().hex[:8]}/app"
    base = uuid.uuid4().bytes * 256
    stop = threading.Event()
    outcomes: list[int] = []
    deletions: list[int] = []

    def pusher(n: int) -> None:
        with httpx.Client(base_url=registry.url, timeout=60) as c:
            i = 0
            while not stop.is_set():
                outcomes.append(push_racing(c, repo, f"p{n}-{i}", [base, f"{n}-{i}".encode()]))
                i += 1

    def deleter() -> None:
        with httpx.Client(base_url=registry.url, timeout=60) as c:
            for _ in range(25):
                deletions.append(c.delete(f"/api/v1/repositories/{repo}").status_code)
                stop.wait(0.03)
        stop.set()

    threads = [threading.Thread(target=pusher, args=(n,)) for n in range(3)]
    threads.append(threading.Thread(target=deleter))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads)
    assert 200 in deletions and set(deletions) <= {200, 404}
    assert 201 in outcomes and set(outcomes) <= {201, 400, 404}, set(outcomes)
    with httpx.Client(base_url=registry.url, timeout=60) as c:
        tags = c.get(f"/v2/{repo}/tags/list")
        for tag in tags.json()["tags"] if tags.status_code == 200 else []:
            manifest = c.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
            assert manifest.status_code == 200, tag
            for desc in [manifest.json()["config"], *manifest.json()["layers"]]:
                blob = c.get(f"/v2/{repo}/blobs/{desc['digest']}")
                assert blob.status_code == 200 and sha256(blob.content) == desc["digest"], tag


def push_racing(c: httpx.Client, repo: str, tag: str, layers: list[bytes]) -> int:
    """Push blobs then a manifest naming them; the status of the first failure or of the PUT."""
    config = json.dumps({"os": "linux", "tag": tag}).encode()
    for blob in [*layers, config]:
        response = c.post(
            f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob
        )
        if response.status_code != 201:
            return response.status_code
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", b) for b in layers],
        }
    ).encode()
    return c.put(
        f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    ).status_code
