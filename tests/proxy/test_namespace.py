"""Registry proxying with `?ns=HOST`: one Dockyard answering for several upstreams under the
plain repository names containerd sends, with the cache's access rules, and never a request to
a host no upstream names.

One set of servers for the module per backend pair: two CNCF Distribution upstreams configured
as `docker.io` (anonymous pulls allowed) and `ghcr.io` (accounts only), and a Dockyard with
accounts on.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, s3_postgres_env
from tests.proxy.helpers import (
    ACCEPT,
    Trap,
    Upstream,
    error_of,
    get_manifest,
    make_image,
    proxies_env,
    pull,
    sha256,
    upstream,
)
from tests.support.server import RunningRegistry, free_port

ADMIN = ("admin", "admin-pw1")


class Setup:
    def __init__(self, hub: Upstream, ghcr: Upstream, cache: RunningRegistry) -> None:
        self.hub = hub
        self.ghcr = ghcr
        self.cache = cache

    def client(self, auth: httpx.Auth | tuple[str, str] | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.cache.url, timeout=60, auth=auth)

    def token(self, scope: str) -> dict[str, str]:
        """An administrator's bearer token for `scope` only."""
        resp = httpx.get(
            f"{self.cache.url}/token",
            params={"service": "dockyard", "scope": scope},
            auth=ADMIN,
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        return {"Authorization": f"Bearer {resp.json()['token']}"}


@pytest.fixture(scope="module", params=BACKENDS)
def setup(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("ns-" + request.param.replace("+", "-"))
    backend = {}
    if request.param == "s3+postgresql":
        backend = s3_postgres_env(
            request.getfixturevalue("s3_server"),
            request.getfixturevalue("pg_cluster"),
            redirect=False,
        )
    with upstream(root / "hub") as hub, upstream(root / "ghcr") as ghcr:
        cache = RunningRegistry(
            data_dir=root / "data",
            port=free_port(),
            args=("--auth",),
            log_dir=root,
            env={
                **backend,
                "DOCKYARD_ADMIN_PASSWORD": ADMIN[1],
                **proxies_env(
                    {"name": "docker.io", "url": hub.url, "anonymous": True},
                    {"name": "ghcr.io", "url": ghcr.url},
                ),
            },
        ).start()
        try:
            yield Setup(hub, ghcr, cache)
        finally:
            cache.stop()


def test_ns_reads_are_the_cached_repository_with_its_namespace_header(
    setup: Setup, tmp_path: Path
) -> None:
    image = make_image(tmp_path, "hub")
    setup.hub.push_image("library/alpine", "3.20", image)
    setup.hub.push_image("library/alpine", "3.21", image)
    other = make_image(tmp_path, "ghcr")
    setup.ghcr.push_image("owner/app", "1.0", other)
    ns = {"ns": "docker.io"}
    with setup.client() as http:
        # Manifest GET and HEAD, by tag and digest, under the plain name containerd sends.
        got = http.get("/v2/library/alpine/manifests/3.20", params=ns, headers={"Accept": ACCEPT})
        assert got.status_code == 200, got.text
        assert got.headers["oci-namespace"] == "docker.io"
        assert got.headers["docker-content-digest"] == image.manifest_digest
        assert got.content == image.manifest_bytes
        digest = image.manifest_digest
        head = http.head(f"/v2/library/alpine/manifests/{digest}", params=ns)
        assert head.status_code == 200 and head.headers["oci-namespace"] == "docker.io"
        # Blobs GET and HEAD.
        layer = image.layers[0]
        blob = http.get(f"/v2/library/alpine/blobs/{layer.digest}", params=ns)
        assert blob.status_code == 200 and blob.content == layer.compressed
        assert blob.headers["oci-namespace"] == "docker.io"
        blob_head = http.head(f"/v2/library/alpine/blobs/{image.config_digest}", params=ns)
        assert blob_head.status_code == 200 and blob_head.headers["oci-namespace"] == "docker.io"
        # Docker Hub's official images without `library/`, as other clients may send them.
        short = http.head("/v2/alpine/manifests/3.20", params=ns, headers={"Accept": ACCEPT})
        assert short.status_code == 200 and short.headers["docker-content-digest"] == digest
        # Tags and referrers: the cached repository's, with the header.
        tags = http.get("/v2/library/alpine/tags/list", params=ns)
        assert tags.status_code == 200, tags.text
        assert tags.json() == {"name": "library/alpine", "tags": ["3.20", "3.21"]}
        assert tags.headers["oci-namespace"] == "docker.io"
        # Pages stay under the plain name and `ns`.
        first = http.get("/v2/library/alpine/tags/list", params={**ns, "n": 1})
        assert first.json()["tags"] == ["3.20"]
        link = first.headers["link"]
        assert link == '</v2/library/alpine/tags/list?n=1&last=3.20&ns=docker.io>; rel="next"'
        second = http.get(link[1 : link.index(">")])
        assert second.json() == {"name": "library/alpine", "tags": ["3.21"]}
        assert second.headers["oci-namespace"] == "docker.io"
        # The prefixed name lists the same tags under its own name.
        prefixed_tags = http.get("/v2/docker.io/library/alpine/tags/list")
        assert prefixed_tags.json() == {
            "name": "docker.io/library/alpine",
            "tags": ["3.20", "3.21"],
        }
        referrers = http.get(f"/v2/library/alpine/referrers/{digest}", params=ns)
        prefixed = http.get(f"/v2/docker.io/library/alpine/referrers/{digest}")
        assert referrers.status_code == prefixed.status_code == 200, referrers.text
        assert referrers.json() == prefixed.json()
        assert referrers.headers["oci-namespace"] == "docker.io"
        # It is the cache namespace's repository: what the prefixed name serves, the same
        # content, and listed under that name only.
        assert pull(http, "docker.io/library/alpine", "3.20").digest == digest
        # A missing manifest of a configured upstream is a 404 that still names the namespace.
        missing_ns = http.get("/v2/library/alpine/manifests/nope", params=ns)
        assert missing_ns.status_code == 404 and error_of(missing_ns)["code"] == "MANIFEST_UNKNOWN"
        assert missing_ns.headers["oci-namespace"] == "docker.io"
        # The host in `ns` is matched as a host: case does not matter.
        upper = http.head(
            "/v2/library/alpine/manifests/3.20",
            params={"ns": "Docker.IO"},
            headers={"Accept": ACCEPT},
        )
        assert upper.status_code == 200 and upper.headers["oci-namespace"] == "docker.io"
    with setup.client(ADMIN) as admin:
        # Without `ns`, the plain name is an ordinary (here absent) repository: no mirror is set.
        missing = get_manifest(admin, "library/alpine", "3.20")
        assert missing.status_code == 404, missing.text
        assert "oci-namespace" not in missing.headers
    # Each upstream is asked only for its own repositories.
    assert all("owner/app" not in p for p in setup.hub.proxy.paths())


def test_ns_pulls_follow_the_cache_namespace_access_rules(setup: Setup, tmp_path: Path) -> None:
    """ghcr.io allows no anonymous pulls: a caller needs pull on `ghcr.io/owner/app`, the
    repository the content is kept in. A token for the plain name or another repository does
    not give it."""
    image = make_image(tmp_path, "closed")
    setup.ghcr.push_image("owner/app", "1.0", image)
    ns = {"ns": "ghcr.io"}
    path = "/v2/owner/app/manifests/1.0"
    setup.ghcr.proxy.reset()
    with setup.client() as anon:
        refused = anon.get(path, params=ns, headers={"Accept": ACCEPT})
        assert refused.status_code == 401, refused.text
        challenge = refused.headers["www-authenticate"]
        assert 'scope="repository:ghcr.io/owner/app:pull"' in challenge, challenge
        blob = anon.get(f"/v2/owner/app/blobs/{image.layers[0].digest}", params=ns)
        assert blob.status_code == 401
        for scope in ("repository:owner/app:pull", "repository:ghcr.io/owner/other:pull"):
            narrow = anon.get(path, params=ns, headers={"Accept": ACCEPT, **setup.token(scope)})
            assert narrow.status_code in (401, 403), f"{scope}: {narrow.status_code}"
        assert setup.ghcr.proxy.paths() == []
        granted = setup.token("repository:ghcr.io/owner/app:pull")
        ok = anon.get(path, params=ns, headers={"Accept": ACCEPT, **granted})
        assert ok.status_code == 200, ok.text
        assert ok.headers["oci-namespace"] == "ghcr.io"
        assert ok.headers["docker-content-digest"] == image.manifest_digest
        # The same token does not reach the other upstream's repository of the same path.
        elsewhere = anon.get(
            path, params={"ns": "docker.io"}, headers={"Accept": ACCEPT, **granted}
        )
        assert elsewhere.status_code in (401, 403), elsewhere.text


def test_writes_with_ns_are_refused(setup: Setup, tmp_path: Path) -> None:
    image = make_image(tmp_path, "writes")
    ns = {"ns": "docker.io"}
    setup.hub.proxy.reset()
    with setup.client(ADMIN) as admin:
        writes = {
            "start upload": admin.post("/v2/library/busybox/blobs/uploads/", params=ns),
            "put manifest": admin.put(
                "/v2/library/busybox/manifests/v1",
                params=ns,
                content=image.manifest_bytes,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            ),
            "delete manifest": admin.delete("/v2/library/busybox/manifests/v1", params=ns),
            "delete blob": admin.delete(
                f"/v2/library/busybox/blobs/{image.layers[0].digest}", params=ns
            ),
        }
        for what, resp in writes.items():
            assert resp.status_code == 405, f"{what}: {resp.status_code} {resp.text}"
            error = error_of(resp)
            assert error["code"] == "UNSUPPORTED" and "ns" in error["message"], what
        # Nothing was created under the plain name either.
        assert admin.get("/v2/library/busybox/tags/list").status_code == 404
    assert setup.hub.proxy.paths() == []


def test_an_unconfigured_ns_is_a_missing_repository_and_never_contacted(setup: Setup) -> None:
    setup.hub.proxy.reset()
    setup.ghcr.proxy.reset()
    with Trap() as trap, setup.client(ADMIN) as admin:
        hosts = [
            f"127.0.0.1:{trap.port}",
            f"localhost:{trap.port}",
            "quay.io",
            "",
            "docker.io/../ghcr.io",
            "x" * 5000,
        ]
        for host in hosts:
            for path in (
                "/v2/library/alpine/manifests/latest",
                "/v2/library/alpine/tags/list",
                f"/v2/library/alpine/blobs/sha256:{'0' * 64}",
            ):
                resp = admin.get(path, params={"ns": host})
                assert resp.status_code == 404, f"{host[:40]} {path}: {resp.text}"
                assert error_of(resp)["code"] == "NAME_UNKNOWN"
                assert "oci-namespace" not in resp.headers
            head = admin.head("/v2/library/alpine/manifests/latest", params={"ns": host})
            assert head.status_code == 404
        assert trap.connections == 0
    # The configured upstreams were not asked either: an unknown ns is answered here.
    assert setup.hub.proxy.paths() == setup.ghcr.proxy.paths() == []


def test_ns_requests_are_in_the_access_log(setup: Setup) -> None:
    with setup.client() as http:
        http.head("/v2/library/alpine/manifests/3.20", params={"ns": "docker.io"})
    assert setup.cache.log_path is not None
    lines = setup.cache.log_path.read_text().splitlines()
    assert any("/v2/library/alpine/manifests/3.20?ns=docker.io" in line for line in lines)


def test_ns_and_prefixed_misses_at_once_make_one_upstream_download(
    setup: Setup, tmp_path: Path
) -> None:
    """The `ns` name and the prefixed name are one cached repository: clients asking both ways
    at the same moment share its single download of each piece."""
    image = make_image(tmp_path, "together", file_size=256 * 1024)
    setup.hub.push_image("library/together", "1", image)
    setup.hub.proxy.reset()
    layer = image.layers[0]
    plain = f"/v2/library/together/blobs/{layer.digest}?ns=docker.io"
    prefixed = f"/v2/docker.io/library/together/blobs/{layer.digest}"

    def fetch(path: str) -> bytes:
        with setup.client() as http:
            got = http.get(path)
            assert got.status_code == 200, got.text
            return got.content

    with ThreadPoolExecutor(8) as pool:
        bodies = list(pool.map(fetch, [plain, prefixed] * 4))
    assert all(body == layer.compressed for body in bodies)
    downloads = [p for p in setup.hub.proxy.paths() if p.startswith("GET") and layer.digest in p]
    assert len(downloads) == 1, setup.hub.proxy.paths()


def test_an_ns_naming_this_registry_is_ignored(setup: Setup) -> None:
    """A client that sends `ns` to the registry it names (the spec asks it not to) gets that
    registry's own repository, pushes included."""
    data = b"a blob of a local repository"
    own = {"ns": setup.cache.host}
    with setup.client(ADMIN) as admin:
        pushed = admin.post(
            "/v2/local/app/blobs/uploads/", params={**own, "digest": sha256(data)}, content=data
        )
        assert pushed.status_code == 201, pushed.text
        got = admin.get(f"/v2/local/app/blobs/{sha256(data)}", params=own)
        assert got.status_code == 200 and got.content == data
        assert "oci-namespace" not in got.headers
