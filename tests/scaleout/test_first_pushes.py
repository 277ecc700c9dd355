"""Many new repositories pushed at once — a CI fleet's first builds into one namespace — all
succeed on S3 + PostgreSQL. Every first push once moved the catalog's version, one row every
serializable transaction of them then wrote: on a fresh database about half of 48 such pushes
used up their attempts and answered 503. Now the catalog is read from the repositories' index
and no row is shared by every new repository's push.

A fleet making new repositories from one image used to write one more shared row in every
push: the namespace's count of links to each blob (the quota's, revision 0009); on PostgreSQL
some pushes then used up their attempts. Since revision 0016 a push of content the namespace
already holds writes no such row.

Without any shared row, one push in a few hundred still answered 503: PostgreSQL locks what a
serializable transaction reads by index page, and a namespace's new repositories share the
pages their pushes' foreign-key checks and triggers read and write. A push's writes now take
the namespace's turn (`metadata/postgres_runner.py`), so none is refused."""

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


def push_shared_image(url: str, repo: str, layer: bytes, config: bytes) -> list[tuple[str, int]]:
    """The same image (layer, config, manifest) into `repo`: every status it got."""
    statuses: list[tuple[str, int]] = []
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
            content=json.dumps(manifest, separators=(",", ":")).encode(),
            headers={"Content-Type": OCI_MANIFEST},
        )
        statuses.append(("manifest", put.status_code))
    return statuses


def push_new_repository(url: str, repo: str) -> list[tuple[str, int]]:
    """A first push of an image of its own (layer, config, manifest); every status it got."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "repo": repo}).encode()
    return push_shared_image(url, repo, os.urandom(2048), config)


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


def test_concurrent_first_pushes_of_one_image_into_new_repositories_all_succeed(
    start_registry: Callable[..., RunningRegistry], shared_backends: dict[str, str]
) -> None:
    """A fleet pushing the same image into new repositories of one namespace at once: all
    succeed, the namespace's usage counts each blob once, and only the last repository's
    deletion frees it."""
    registry = start_registry(env=shared_backends)
    namespace = f"same{uuid.uuid4().hex[:8]}"
    repos = [f"{namespace}/app-{i:02d}" for i in range(PUSHERS)]
    layer = os.urandom(4096)
    config = json.dumps({"architecture": "amd64", "os": "linux", "fleet": namespace}).encode()
    with ThreadPoolExecutor(PUSHERS) as pool:
        results = list(pool.map(lambda r: push_shared_image(registry.url, r, layer, config), repos))
    failed = {r: s for r, s in zip(repos, results, strict=True) if any(c >= 300 for _, c in s)}
    assert not failed, f"{len(failed)} of {PUSHERS} pushes failed: {failed}"

    with httpx.Client(base_url=registry.url, timeout=60.0) as client:
        manifest = client.get(
            f"/v2/{repos[0]}/manifests/v1", headers={"Accept": OCI_MANIFEST}
        ).content
        usage = client.get("/api/v1/usage", params={"namespace": namespace})
        assert usage.status_code == 200, usage.text
        (counted,) = usage.json()["namespaces"]
        assert counted["repositories"] == PUSHERS
        assert counted["blobs"] == 3
        assert counted["bytes"] == len(layer) + len(config) + len(manifest)
        # Deleting all but one repository frees nothing of the namespace's count; the last frees it.
        for repo in repos[:-1]:
            assert client.delete(f"/api/v1/repositories/{repo}").status_code in (200, 202, 204)
        (counted,) = client.get("/api/v1/usage", params={"namespace": namespace}).json()[
            "namespaces"
        ]
        assert counted["bytes"] == len(layer) + len(config) + len(manifest)
        assert client.delete(f"/api/v1/repositories/{repos[-1]}").status_code in (200, 202, 204)
        listed = client.get("/api/v1/usage", params={"namespace": namespace}).json()["namespaces"]
        assert listed == [] or listed[0]["bytes"] == 0, listed


def test_a_fleet_mounting_one_image_into_new_repositories_never_runs_out_of_attempts(
    start_registry: Callable[..., RunningRegistry], shared_backends: dict[str, str]
) -> None:
    """Eight clients, each making new repositories of one namespace one after another from
    the same image (its blobs mounted from a first repository, then the manifest)."""
    registry = start_registry(env=shared_backends)
    namespace = f"fill{uuid.uuid4().hex[:8]}"
    layer = os.urandom(4096)
    config = json.dumps({"architecture": "amd64", "os": "linux", "fleet": namespace}).encode()
    assert all(
        c < 300 for _, c in push_shared_image(registry.url, f"{namespace}/base", layer, config)
    )
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(LAYER, layer)],
        },
        separators=(",", ":"),
    ).encode()

    def fill(client_no: int) -> list[tuple[str, int]]:
        bad: list[tuple[str, int]] = []
        with httpx.Client(base_url=registry.url, timeout=120.0) as client:
            for n in range(25):
                repo = f"{namespace}/c{client_no}-{n:02d}"
                for blob in (layer, config):
                    mounted = client.post(
                        f"/v2/{repo}/blobs/uploads/",
                        params={"mount": sha256(blob), "from": f"{namespace}/base"},
                    )
                    if mounted.status_code != 201:
                        bad.append((repo, mounted.status_code))
                put = client.put(
                    f"/v2/{repo}/manifests/v1",
                    content=manifest,
                    headers={"Content-Type": OCI_MANIFEST},
                )
                if put.status_code != 201:
                    bad.append((repo, put.status_code))
        return bad

    with ThreadPoolExecutor(8) as pool:
        bad = [b for part in pool.map(fill, range(8)) for b in part]
    # Before revision 0016, 1-2 of these 600 requests answered 503 in every local run; after
    # it one still did in a CI run under load: not a shared row but shared index pages, which
    # the namespace's turn now keeps these writes from sharing at once.
    assert not bad, f"{len(bad)} requests refused: {bad[:10]}"
