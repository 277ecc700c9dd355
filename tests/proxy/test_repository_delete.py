"""Deleting a cached (pull-through) repository: its records and cache index rows go, the next pull
fetches from the upstream again, and only an administrator may delete under a cache prefix."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.proxy.helpers import Shared, Upstream, make_image, proxies_env, pull, unique
from tests.support.server import RunningRegistry

ADMIN_PASSWORD = "admin-Pa55word"


def test_a_cached_repository_is_deleted_and_fetched_again(shared: Shared, tmp_path: Path) -> None:
    repo = unique("library")
    cached = f"up/{repo}"
    shared.up.push_image(repo, "v1", make_image(tmp_path, "deleted-cache"))
    with httpx.Client(base_url=shared.cache.url, timeout=60) as http:
        first = pull(http, cached, "v1")
        usage = http.get("/api/v1/usage", params={"namespace": "up"}).json()
        assert cached in [r["name"] for r in usage["repositories"]]

        deleted = http.delete(f"/api/v1/repositories/{cached}")
        assert deleted.status_code == 200, deleted.text
        assert deleted.json()["manifests"] == 1 and deleted.json()["blob_links"] >= 2
        usage = http.get("/api/v1/usage", params={"namespace": "up"}).json()
        assert cached not in [r["name"] for r in usage["repositories"]]
        assert cached not in http.get("/v2/_catalog", params={"n": 10000}).json()["repositories"]

        # Nothing of it is held any more: the manifest is fetched from the upstream again.
        shared.up.proxy.reset()
        again = pull(http, cached, "v1")
        assert again.digest == first.digest and again.blobs == first.blobs
        assert any(
            seen.method == "GET" and seen.path == f"/v2/{repo}/manifests/{first.digest}"
            for seen in shared.up.proxy.requests
        )


def test_only_an_administrator_deletes_under_a_cache_prefix(
    up: Upstream, start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    cache = start_registry(
        "--auth",
        env={
            "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **proxies_env({"name": "up", "url": up.url, "anonymous": True}),
        },
    )
    repo = unique("library")
    up.push_image(repo, "v1", make_image(tmp_path, "guarded-cache"))
    admin = ("admin", ADMIN_PASSWORD)
    mallory = ("mallory", "mallory-Pa55")
    with httpx.Client(base_url=cache.url, timeout=60) as http:
        made = http.post(
            "/api/v1/users", auth=admin, json={"name": "mallory", "password": mallory[1]}
        )
        assert made.status_code == 201
        pull(http_with(http, admin), f"up/{repo}", "v1")
        assert (
            http.get("/api/v1/usage", params={"namespace": "up"}, auth=mallory).status_code == 403
        )
        refused = http.delete(f"/api/v1/repositories/up/{repo}", auth=mallory)
        assert refused.status_code == 403, refused.text
        # httpx resolves a literal "..", so the climb is sent encoded, as an attacker would.
        for path in (f"mallory%2F..%2Fup/{repo}", f"mallory/..%2Fup/{repo}"):
            sneaky = http.delete(f"/api/v1/repositories/{path}", auth=mallory)
            assert sneaky.status_code == 400, (path, sneaky.text)
        # Claiming the prefix's name as an organisation does not hand over the cache.
        org = http.post("/api/v1/orgs", json={"name": "up"}, auth=mallory)
        assert org.status_code == 403
        refused = http.delete(f"/api/v1/repositories/up/{repo}", auth=mallory)
        assert refused.status_code == 403
        deleted = http.delete(f"/api/v1/repositories/up/{repo}", auth=admin)
        assert deleted.status_code == 200, deleted.text


def http_with(http: httpx.Client, auth: tuple[str, str]) -> httpx.Client:
    """The same server with `auth` on every request."""
    return httpx.Client(base_url=http.base_url, timeout=60, auth=auth)
