"""Cached repositories in listings, read-only for everyone, visible to anonymous callers only
when the upstream allows it; and repository names that try to reach other hosts (SSRF)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.proxy.helpers import (
    Shared,
    Trap,
    Upstream,
    error_of,
    get_manifest,
    make_image,
    proxies_env,
    pull,
    sha256,
    unique,
)

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def test_cached_repositories_are_listed_and_read_only(shared: Shared, tmp_path: Path) -> None:
    repo = unique("library")
    cached = f"up/{repo}"
    image = make_image(tmp_path, "listed")
    shared.up.push_image(repo, "v1", image)
    shared.up.push_image(repo, "v2", image)
    with httpx.Client(base_url=shared.cache.url, timeout=60) as http:
        pull(http, cached, "v1")
        catalog = http.get("/v2/_catalog", params={"n": 1000}).json()["repositories"]
        assert cached in catalog
        tags = http.get(f"/v2/{cached}/tags/list")
        assert tags.status_code == 200 and tags.json() == {"name": cached, "tags": ["v1", "v2"]}
        paged = http.get(f"/v2/{cached}/tags/list", params={"n": 1})
        assert paged.json()["tags"] == ["v1"] and 'rel="next"' in paged.headers["link"]

        shared.up.proxy.reset()
        layer = image.layers[0].digest
        data = b"not allowed"
        writes = {
            "start upload": http.post(f"/v2/{cached}/blobs/uploads/"),
            "monolithic upload": http.post(
                f"/v2/{cached}/blobs/uploads/", params={"digest": sha256(data)}, content=data
            ),
            "mount": http.post(
                f"/v2/{cached}/blobs/uploads/", params={"mount": layer, "from": cached}
            ),
            "put manifest": http.put(
                f"/v2/{cached}/manifests/v3",
                content=image.manifest_bytes,
                headers={"Content-Type": OCI_MANIFEST},
            ),
            "put by digest": http.put(
                f"/v2/{cached}/manifests/{image.manifest_digest}",
                content=image.manifest_bytes,
                headers={"Content-Type": OCI_MANIFEST},
            ),
            "delete tag": http.delete(f"/v2/{cached}/manifests/v1"),
            "delete manifest": http.delete(f"/v2/{cached}/manifests/{image.manifest_digest}"),
            "delete blob": http.delete(f"/v2/{cached}/blobs/{layer}"),
        }
        for what, resp in writes.items():
            assert resp.status_code == 405, f"{what}: {resp.status_code} {resp.text}"
            assert error_of(resp)["code"] == "UNSUPPORTED", what
        # Mirror mode: writes to an un-prefixed name are about a local repository of that name,
        # never the cached one: a delete finds nothing there...
        mirror_delete = http.delete(f"/v2/{repo}/manifests/v1")
        assert mirror_delete.status_code == 404, mirror_delete.text
        # ...and a push creates an ordinary repository, which from then on answers that name.
        fresh = "mirror-shadow/app"
        for blob in (image.config_bytes, *(layer.compressed for layer in image.layers)):
            assert (
                http.post(
                    f"/v2/{fresh}/blobs/uploads/", params={"digest": sha256(blob)}, content=blob
                ).status_code
                == 201
            )
        pushed = http.put(
            f"/v2/{fresh}/manifests/v3",
            content=image.manifest_bytes,
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert pushed.status_code == 201, pushed.text
        assert http.get(f"/v2/{fresh}/tags/list").json()["tags"] == ["v3"]
        # Nothing was changed, here or upstream.
        assert pull(http, cached, "v1").digest == image.manifest_digest
        assert http.get(f"/v2/{cached}/blobs/{layer}").status_code == 200
    assert not [p for p in shared.up.proxy.paths() if p.split()[0] not in ("GET", "HEAD")]


def test_with_accounts_anonymous_pulls_need_an_anonymous_upstream(
    up: Upstream, start_registry, tmp_path: Path
) -> None:
    repo = "library/app"
    image = make_image(tmp_path, "accounts")
    up.push_image(repo, "v1", image)
    cache = start_registry(
        "--auth",
        env={
            "DOCKYARD_ADMIN_PASSWORD": "admin-pw",
            **proxies_env(
                {"name": "closed", "url": up.url},
                {"name": "open", "url": up.url, "anonymous": True},
            ),
        },
    )
    admin = httpx.BasicAuth("admin", "admin-pw")
    with (
        httpx.Client(base_url=cache.url, timeout=60) as anon,
        httpx.Client(base_url=cache.url, timeout=60, auth=admin) as logged_in,
    ):
        # Anonymous, closed upstream: challenged, and the upstream is never asked.
        up.proxy.reset()
        refused = get_manifest(anon, f"closed/{repo}", "v1")
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer ")
        assert error_of(refused)["code"] == "UNAUTHORIZED"
        blob = anon.get(f"/v2/closed/{repo}/blobs/{image.layers[0].digest}")
        assert blob.status_code == 401
        assert up.proxy.paths() == []
        # The Docker token flow gives an anonymous caller no pull either.
        token = anon.get(
            "/token", params={"service": "dockyard", "scope": f"repository:closed/{repo}:pull"}
        )
        assert token.status_code in (200, 401), token.text
        if token.status_code == 200:  # a token, but without pull on that repository
            bearer = {"Authorization": f"Bearer {token.json()['token']}"}
            resp = anon.get(f"/v2/closed/{repo}/manifests/v1", headers=bearer)
            assert resp.status_code == 401, resp.text
        assert up.proxy.paths() == []

        # An account may pull through the closed upstream.
        assert pull(logged_in, f"closed/{repo}", "v1").digest == image.manifest_digest

        # Anonymous, open upstream: allowed, directly and with an anonymous token.
        assert pull(anon, f"open/{repo}", "v1").digest == image.manifest_digest
        token = anon.get(
            "/token", params={"service": "dockyard", "scope": f"repository:open/{repo}:pull"}
        )
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['token']}"}
        resp = anon.get(f"/v2/open/{repo}/manifests/v1", headers={**bearer, "Accept": OCI_MANIFEST})
        assert resp.status_code == 200 and sha256(resp.content) == image.manifest_digest

        # Listings follow the same rule; nobody, not even the administrator, writes.
        # (A bare catalog request is challenged first; an anonymous token lists.)
        assert anon.get("/v2/_catalog").status_code == 401
        token = anon.get("/token", params={"service": "dockyard", "scope": "registry:catalog:*"})
        bearer = {"Authorization": f"Bearer {token.json()['token']}"}
        assert anon.get("/v2/_catalog", headers=bearer).json()["repositories"] == [f"open/{repo}"]
        assert set(logged_in.get("/v2/_catalog").json()["repositories"]) == {
            f"closed/{repo}",
            f"open/{repo}",
        }
        for name in (f"closed/{repo}", f"open/{repo}"):
            push = logged_in.put(
                f"/v2/{name}/manifests/v2",
                content=image.manifest_bytes,
                headers={"Content-Type": OCI_MANIFEST},
            )
            delete = logged_in.delete(f"/v2/{name}/manifests/v1")
            for resp in (push, delete):
                assert resp.status_code in (403, 405), f"{name}: {resp.status_code} {resp.text}"
                assert error_of(resp)["code"] in ("DENIED", "UNSUPPORTED")


def raw_get(host: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, str]:
    """A GET whose path is sent exactly as given (no client-side normalisation of `..`)."""
    conn = http.client.HTTPConnection(host, timeout=60)
    try:
        conn.putrequest("GET", path, skip_host=bool(headers and "Host" in headers))
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type") or ""
    finally:
        conn.close()


def test_repository_names_never_reach_another_host(shared: Shared, tmp_path: Path) -> None:
    image = make_image(tmp_path, "ssrf")
    shared.up.push_image("library/app", "v1", image)
    digest = image.layers[0].digest
    with Trap() as trap:
        other = f"127.0.0.1:{trap.port}"
        paths = [
            "/v2/127.0.0.1:1/x/manifests/v1",
            f"/v2/{other}/x/manifests/v1",
            f"/v2/up/{other}/x/manifests/v1",
            f"/v2/{other}/x/blobs/{digest}",
            f"/v2/up/{other}/x/blobs/{digest}",
            f"/v2/{other}/x/tags/list",
            f"/v2/up@{other}/x/manifests/v1",
            "/v2/evil.example/x/manifests/v1",
            "/v2/up/evil.example/x/manifests/v1",
            "/v2/up/../../x/manifests/v1",
            "/v2/up/../127.0.0.1:1/x/manifests/v1",
            "/v2/up%2F..%2F..%2Fx/manifests/v1",
            "/v2/up%2F../manifests/v1",
            "/v2/up%2f..%2f127.0.0.1:1%2fx/manifests/v1",
            f"/v2/up/library/app/blobs/sha256:..%2F..%2F{other}",
            f"/v2/up/library/app/manifests/..%2F..%2F{quote(other)}%2Fx",
            f"/v2/up/library/app/manifests/v1@{other}",
            f"/v2/http:%2F%2F{other}/x/manifests/v1",
            f"http://{other}/v2/up/nothing/here/manifests/v1",  # absolute-form target
        ]
        answers = {path: raw_get(shared.cache.host, path) for path in paths}
        # Containerd-style mirror requests name the upstream in `ns`; a Host header can lie.
        answers["ns"] = raw_get(shared.cache.host, f"/v2/up/nothing/manifests/v1?ns={other}")
        answers["host"] = raw_get(shared.cache.host, "/v2/up/nothing/manifests/v1", {"Host": other})
        assert trap.connections == 0, "a repository name made the cache connect elsewhere"

    for path, (status, body, content_type) in answers.items():
        assert 400 <= status < 500, f"{path}: {status} {body[:300]!r}"
        if content_type.startswith("application/json"):
            assert json.loads(body)["errors"], f"{path}: {body[:300]!r}"
    # The configured upstream is the only host asked, only for names of the grammar.
    for line in shared.up.proxy.paths():
        path = line.split(" ", 1)[1]
        assert path.startswith("/v2/"), line
        assert ".." not in path and "%" not in path and str(trap.port) not in path, line
        assert "127.0.0.1" not in path and "@" not in path, line
