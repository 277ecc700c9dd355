"""Many new repositories pushed at once — a CI fleet's first builds into one namespace — all
succeed on S3 + PostgreSQL. Every first push once moved the catalog's version, one row every
serializable transaction of them then wrote: on a fresh database about half of 48 such pushes
used up their attempts and answered 503. Now the catalog is read from the repositories' index
and no row is shared by every new repository's push.

Each image has its own layers here: a base layer shared by the whole fleet is one more row all
its pushes update (the namespace's count of links to it), which is the quota's, not the
catalog's."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.push import LAYER, OCI_CONFIG, OCI_MANIFEST, descriptor, sha256
from tests.support.server import RunningRegistry

PUSHERS = 48


def push_new_repository(url: str, repo: str) -> list[tuple[str, int]]:
    """A first push (layer, config, manifest); every status it got."""
    statuses: list[tuple[str, int]] = []
    config = json.dumps({"architecture": "amd64", "os": "linux", "repo": repo}).encode()
    layer = os.urandom(2048)
    with httpx.Client(base_url=url, timeout=120.0) as client:
        for blob in (layer, config):
            sent = client.post(
                f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob
            )
            statuses.append(("blob", sent.status_code))
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(LAYER, layer)],
        }
        put = client.put(
            f"/v2/{repo}/manifests/v1",
            content=json.dumps(manifest).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        )
        statuses.append(("manifest", put.status_code))
    return statuses


def catalog_of(client: httpx.Client, namespace: str) -> list[str]:
    """The namespace's repositories, following the catalog's pages."""
    listed: list[str] = []
    params = {"n": "20", "last": f"{namespace}/"}
    while True:
        page = client.get("/v2/_catalog", params=params)
        assert page.status_code == 200, page.text
        names = page.json()["repositories"]
        listed += [n for n in names if n.startswith(namespace + "/")]
        if "Link" not in page.headers:
            return listed
        params["last"] = names[-1]


def test_concurrent_first_pushes_of_new_repositories_all_succeed(
    start_registry: Callable[..., RunningRegistry], shared_backends: dict[str, str]
) -> None:
    registry = start_registry(env=shared_backends)  # a fresh database, as a new registry's
    namespace = f"fleet{uuid.uuid4().hex[:8]}"
    repos = [f"{namespace}/app-{i:02d}" for i in range(PUSHERS)]
    with ThreadPoolExecutor(PUSHERS) as pool:
        results = list(pool.map(lambda r: push_new_repository(registry.url, r), repos))
    failed = {r: s for r, s in zip(repos, results, strict=True) if any(c >= 300 for _, c in s)}
    assert not failed, f"{len(failed)} of {PUSHERS} pushes failed: {failed}"

    with httpx.Client(base_url=registry.url, timeout=60.0) as client:
        assert catalog_of(client, namespace) == repos
        for repo in repos:
            tags = client.get(f"/v2/{repo}/tags/list")
            assert tags.status_code == 200 and tags.json() == {"name": repo, "tags": ["v1"]}
