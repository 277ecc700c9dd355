"""Stateless replicas over S3 and PostgreSQL: uploads continue across replicas, content pushed
through one is pulled through another, blob downloads go straight to the object store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.images import write_oci_image
from tests.support.peers import containers_env
from tests.support.push import image_manifest, push_manifest, sha256, unique_repo


def test_chunks_alternate_between_replicas_and_pull_through_the_other(replicas) -> None:
    a, b = replicas(), replicas()
    repo = unique_repo("scale")
    blob = os.urandom(3 * 1024 * 1024 + 5)
    piece = 1024 * 1024
    with httpx.Client(timeout=60) as c:
        location = c.post(f"{a.url}/v2/{repo}/blobs/uploads/").headers["Location"]
        for number, offset in enumerate(range(0, len(blob), piece)):
            server = (a, b)[number % 2]
            chunk = blob[offset : offset + piece]
            resp = c.patch(
                server.url + location,
                content=chunk,
                headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"},
            )
            assert resp.status_code == 202, resp.text
            location = resp.headers["Location"]
        status = c.get(b.url + location)
        assert status.headers["Range"] == f"0-{len(blob) - 1}"
        done = c.put(a.url + location, params={"digest": sha256(blob)})
        assert done.status_code == 201, done.text
        # Through the other replica: a redirect to the object store, which serves the bytes.
        redirect = c.get(f"{b.url}/v2/{repo}/blobs/{sha256(blob)}")
        assert redirect.status_code == 307
        assert redirect.headers["Location"].startswith("http://127.0.0.1:")
        assert c.get(redirect.headers["Location"]).content == blob
    with (
        httpx.Client(base_url=a.url, timeout=60) as ca,
        httpx.Client(base_url=b.url, timeout=60) as cb,
    ):
        body = image_manifest(ca, repo)
        digest = push_manifest(ca, repo, "v1", body)
        assert cb.get(f"/v2/{repo}/manifests/v1").content == body
        assert cb.get(f"/v2/{repo}/tags/list").json()["tags"] == ["v1"]
        assert cb.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
        assert ca.get(f"/v2/{repo}/manifests/v1").status_code == 404


def test_replica_killed_mid_upload_client_finishes_on_the_other(replicas) -> None:
    a, b = replicas(), replicas()
    repo = unique_repo("scale")
    blob = os.urandom(2 * 1024 * 1024)
    half = len(blob) // 2
    with httpx.Client(timeout=60) as c:
        location = c.post(f"{a.url}/v2/{repo}/blobs/uploads/").headers["Location"]
        first = c.patch(
            a.url + location, content=blob[:half], headers={"Content-Range": f"0-{half - 1}"}
        )
        assert first.status_code == 202
        a.kill()
        status = c.get(b.url + location)
        assert status.status_code == 204 and status.headers["Range"] == f"0-{half - 1}"
        rest = c.put(
            b.url + location,
            params={"digest": sha256(blob)},
            content=blob[half:],
            headers={"Content-Range": f"{half}-{len(blob) - 1}"},
        )
        assert rest.status_code == 201, rest.text
        got = c.get(f"{b.url}/v2/{repo}/blobs/{sha256(blob)}", follow_redirects=True)
        assert got.content == blob


def test_skopeo_follows_presigned_redirects(replicas, tmp_path: Path) -> None:
    server = replicas()
    image = write_oci_image(tmp_path / "src", "v1", file_size=500_000)
    ref = f"docker://{server.host}/scale/skopeo:v1"
    with containers_env(tmp_path / "ce") as ce:
        ce.skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", ref)
        ce.skopeo("copy", "--src-tls-verify=false", ref, f"oci:{tmp_path / 'back'}:v1")
        raw = ce.skopeo("inspect", "--raw", f"oci:{tmp_path / 'back'}:v1", text=False)
    assert raw.stdout == image.manifest_bytes
    assert '"GET /v2/scale/skopeo/blobs/sha256:' in server.log()
    assert " 307 " in server.log(), "blob downloads should be redirected to the object store"


def test_tokens_from_one_replica_work_on_the_other(replicas) -> None:
    env = {"DOCKYARD_ADMIN_PASSWORD": "admin-pw"}
    a, b = replicas("--auth", env=env), replicas("--auth", env=env)
    token = httpx.get(
        f"{a.url}/token",
        params={"service": "dockyard", "scope": "repository:admin/app:pull,push"},
        auth=("admin", "admin-pw"),
    ).json()["token"]
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        assert c.get(f"{b.url}/v2/").status_code == 200
        started = c.post(f"{b.url}/v2/admin/app/blobs/uploads/")
        assert started.status_code == 202, started.text
    # Both replicas sign with the one key kept in the shared database.
    assert (a.data_dir / "auth").exists() is False and (b.data_dir / "auth").exists() is False


def test_rate_limits_are_shared_through_redis(replicas, redis_server) -> None:
    """Without a shared counter each replica would grant its own quota."""
    env = {
        "DOCKYARD_ADMIN_PASSWORD": "admin-pw",
        "DOCKYARD_REDIS_URL": redis_server.url,
        "DOCKYARD_ANONYMOUS_PULL_LIMIT": "3",
    }
    a, b = replicas("--auth", env=env), replicas("--auth", env=env)
    repo = f"admin/limits{os.getpid()}"
    with httpx.Client(base_url=a.url, auth=("admin", "admin-pw"), timeout=30) as admin:
        push_manifest(admin, repo, "v1", image_manifest(admin, repo))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "repo",
            "visibility",
            repo,
            "public",
            "--data-dir",
            str(a.data_dir),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, **{k: v for k, v in a.env.items()}},
    )
    answers = []
    for server in (a, b, a, b):
        answers.append(
            httpx.get(
                f"{server.url}/v2/{repo}/manifests/v1",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
            )
        )
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert answers[2].headers["RateLimit-Remaining"] == "0;w=21600"
    assert answers[3].json()["errors"][0]["code"] == "TOOMANYREQUESTS"
