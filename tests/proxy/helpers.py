"""Pushing images to a real upstream and pulling them back through the cache, over plain HTTP."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.counting_proxy import CountingProxy
from tests.support.images import BuiltImage, BuiltIndex, write_oci_image, write_oci_index
from tests.support.peers import Distribution
from tests.support.server import RunningRegistry

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- pushing to the upstream --------------------------------------------------------------------


def push_blob(http: httpx.Client, repo: str, data: bytes) -> str:
    digest = sha256(data)
    start = http.post(f"/v2/{repo}/blobs/uploads/")
    assert start.status_code == 202, start.text
    location = start.headers["Location"]
    # Distribution's Location carries a query of its own (_state): append to it.
    location += ("&" if "?" in location else "?") + f"digest={digest}"
    done = http.put(location, content=data, headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, done.text
    return digest


def push_manifest(
    http: httpx.Client, repo: str, reference: str, body: bytes, media_type: str
) -> str:
    resp = http.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
    )
    assert resp.status_code == 201, resp.text
    return resp.headers["Docker-Content-Digest"]


def push_built_image(http: httpx.Client, repo: str, tag: str | None, image: BuiltImage) -> str:
    push_blob(http, repo, image.config_bytes)
    for layer in image.layers:
        push_blob(http, repo, layer.compressed)
    return push_manifest(
        http, repo, tag or image.manifest_digest, image.manifest_bytes, OCI_MANIFEST
    )


def push_built_index(http: httpx.Client, repo: str, tag: str, index: BuiltIndex) -> str:
    for child in index.children:
        push_built_image(http, repo, None, child)
    return push_manifest(http, repo, tag, index.index_bytes, OCI_INDEX)


def make_image(tmp: Path, seed: str, **kwargs: Any) -> BuiltImage:
    return write_oci_image(tmp / f"layout-{seed}", "v1", seed=seed, **kwargs)


def make_index(tmp: Path, seed: str, **kwargs: Any) -> BuiltIndex:
    return write_oci_index(tmp / f"index-{seed}", "v1", seed=seed, **kwargs)


# -- pulling through the cache ------------------------------------------------------------------


@dataclass
class Pulled:
    manifest: bytes
    digest: str
    headers: httpx.Headers
    blobs: dict[str, bytes] = field(default_factory=dict)


def get_manifest(http: httpx.Client, repo: str, reference: str) -> httpx.Response:
    return http.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})


def pull(http: httpx.Client, repo: str, reference: str) -> Pulled:
    """The manifest and, for an image manifest, its config and layers, all digest-checked."""
    resp = get_manifest(http, repo, reference)
    assert resp.status_code == 200, f"GET {repo}:{reference}: {resp.status_code} {resp.text}"
    digest = resp.headers["Docker-Content-Digest"]
    assert sha256(resp.content) == digest
    pulled = Pulled(resp.content, digest, resp.headers)
    doc = json.loads(resp.content)
    if "layers" in doc:
        for desc in [doc["config"], *doc["layers"]]:
            blob = http.get(f"/v2/{repo}/blobs/{desc['digest']}")
            assert blob.status_code == 200, f"blob {desc['digest']}: {blob.text}"
            assert sha256(blob.content) == desc["digest"]
            assert len(blob.content) == desc["size"]
            pulled.blobs[desc["digest"]] = blob.content
    return pulled


def error_of(resp: httpx.Response) -> dict[str, Any]:
    """The first error of a spec-shaped JSON error body (fails on anything else)."""
    assert resp.headers.get("content-type", "").startswith("application/json"), resp.text
    errors = resp.json()["errors"]
    assert errors and {"code", "message"} <= set(errors[0]), errors
    return errors[0]


# -- a real upstream behind a counting proxy ----------------------------------------------------


@dataclass
class Upstream:
    """CNCF Distribution with a CountingProxy in front: Dockyard is pointed at `proxy.url`."""

    dist: Distribution
    proxy: CountingProxy
    auth: httpx.Auth | None = None

    @property
    def url(self) -> str:
        return self.proxy.url

    def client(self) -> httpx.Client:
        """Talks to the Distribution directly (never counted)."""
        return httpx.Client(base_url=self.dist.url, timeout=120.0, auth=self.auth)

    def push_image(self, repo: str, tag: str, image: BuiltImage) -> str:
        with self.client() as http:
            return push_built_image(http, repo, tag, image)

    def push_index(self, repo: str, tag: str, index: BuiltIndex) -> str:
        with self.client() as http:
            return push_built_index(http, repo, tag, index)

    def stop(self) -> None:
        """The upstream goes away: Distribution stopped, the proxy refuses connections."""
        self.dist.stop()
        self.proxy.stop()


@contextmanager
def upstream(
    root: Path,
    *,
    users: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    auth: httpx.Auth | None = None,
) -> Iterator[Upstream]:
    with (
        Distribution(root, users=users, config=config or {}) as dist,
        CountingProxy(dist.port) as proxy,
    ):
        if users and auth is None:
            auth = httpx.BasicAuth(*next(iter(users.items())))
        yield Upstream(dist, proxy, auth)


@dataclass
class Shared:
    """The upstream and the cache several tests share (see conftest)."""

    up: Upstream
    cache: RunningRegistry


def proxies_env(*entries: dict[str, Any]) -> dict[str, str]:
    return {"DOCKYARD_PROXIES": json.dumps(list(entries))}


def start_cache(
    start_registry: Callable[..., RunningRegistry],
    up_url: str,
    *args: str,
    env: dict[str, str] | None = None,
    **entry: Any,
) -> RunningRegistry:
    """A Dockyard caching `up_url` under the prefix `up` (options as in the `proxies` list)."""
    return start_registry(
        *args, env={**proxies_env({"name": "up", "url": up_url, **entry}), **(env or {})}
    )


def cache_with_accounts(
    start_registry: Callable[..., RunningRegistry],
    up_url: str,
    *args: str,
    mirror: bool = True,
    env: dict[str, str] | None = None,
    data_dir: Path | None = None,
) -> RunningRegistry:
    """A Dockyard with accounts (admin: admin-pw) caching `up_url` anonymously under `up/` (and
    as a mirror unless told otherwise), with the ordinary account mallory (mallory-pw), owner of
    its own namespace only."""
    entry: dict[str, Any] = {"name": "up", "url": up_url, "anonymous": True}
    if mirror:
        entry["mirror"] = True
    cache = start_registry(
        "--auth",
        *args,
        data_dir=data_dir,
        env={"DOCKYARD_ADMIN_PASSWORD": "admin-pw", **(env or {}), **proxies_env(entry)},
    )
    created = httpx.post(
        f"{cache.url}/api/v1/users",
        auth=("admin", "admin-pw"),
        timeout=30,
        json={"name": "mallory", "password": "mallory-pw"},
    )
    assert created.status_code == 201, created.text
    return cache


# -- a trap: a listening socket that must never be connected to --------------------------------


@dataclass
class Trap:
    port: int = 0
    connections: int = 0
    _sock: socket.socket | None = None

    def __enter__(self) -> Trap:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def __exit__(self, *exc: object) -> None:
        if self._sock is not None:
            self._sock.close()


def unique(prefix: str) -> str:
    """A repository name no other test uses."""
    return f"{prefix}/r{uuid.uuid4().hex[:10]}"


class TokenFlow(httpx.Auth):
    """Docker token auth for pushing to a token-protected upstream: on a Bearer challenge, get
    a token for its scope from the realm with Basic credentials, and retry."""

    def __init__(self, username: str, password: str) -> None:
        self.basic = httpx.BasicAuth(username, password)

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        response = yield request
        challenge = response.headers.get("www-authenticate", "")
        if response.status_code != 401 or not challenge.lower().startswith("bearer "):
            return
        params = dict(part.split("=", 1) for part in re.findall(r'(\w+="[^"]*")', challenge[7:]))
        params = {k: v.strip('"') for k, v in params.items()}
        realm = params.pop("realm")
        token = httpx.get(realm, params=params, auth=self.basic, timeout=30)
        token.raise_for_status()
        request.headers["Authorization"] = f"Bearer {token.json()['token']}"
        yield request
