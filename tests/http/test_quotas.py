"""Namespace quotas over the Distribution API, set by `dockyard policy quota` on the running
registry's store, on each backend pair."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from dockyard.service.quotas import human
from tests.support.push import (
    LAYER,
    OCI_CONFIG,
    OCI_MANIFEST,
    descriptor,
    error_code,
    push_blob,
    sha256,
)
from tests.support.server import RunningRegistry


def namespace() -> str:
    return "quota" + uuid.uuid4().hex[:10]


def quota(registry: RunningRegistry, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "policy", "quota", *args],
        env={**os.environ, **registry.env, "DOCKYARD_DATA_DIR": str(registry.data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def upload(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    return client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data)


def chunked_upload(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    patched = client.patch(
        location, content=data, headers={"Content-Type": "application/octet-stream"}
    )
    assert patched.status_code == 202, patched.text
    return client.put(patched.headers["Location"], params={"digest": sha256(data)})


def refused(response: httpx.Response, message: str) -> None:
    assert response.status_code == 403, response.text
    assert error_code(response) == "DENIED"
    assert response.json()["errors"][0]["message"] == message


def test_uploads_past_the_quota_are_refused_and_store_nothing(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = namespace()
    assert quota(registry, "set", ns, "10KiB") == f"{ns}: 0 B used, quota 10 KiB"
    first, second = os.urandom(6 * 1024), os.urandom(5 * 1024)
    assert upload(client, f"{ns}/app", first).status_code == 201
    # The same blob in another repository of the namespace counts once.
    assert upload(client, f"{ns}/web", first).status_code == 201
    refused(
        chunked_upload(client, f"{ns}/app", second),
        f"quota exceeded: 11 KiB of 10 KiB used in {ns}",
    )
    refused(upload(client, f"{ns}/web", second), f"quota exceeded: 11 KiB of 10 KiB used in {ns}")
    assert client.head(f"/v2/{ns}/app/blobs/{sha256(second)}").status_code == 404
    assert quota(registry, "show", ns) == f"{ns}: 6 KiB used, quota 10 KiB"
    # A mount of a blob held elsewhere is new bytes for this namespace: refused too.
    push_blob(client, f"other{ns}/lib", second)
    mounted = client.post(
        f"/v2/{ns}/app/blobs/uploads/",
        params={"mount": sha256(second), "from": f"other{ns}/lib"},
    )
    refused(mounted, f"quota exceeded: 11 KiB of 10 KiB used in {ns}")
    assert client.head(f"/v2/{ns}/app/blobs/{sha256(second)}").status_code == 404
    # Unlinking from both repositories frees the blob's bytes at once.
    assert client.delete(f"/v2/{ns}/app/blobs/{sha256(first)}").status_code == 202
    assert quota(registry, "show", ns) == f"{ns}: 6 KiB used, quota 10 KiB"
    assert client.delete(f"/v2/{ns}/web/blobs/{sha256(first)}").status_code == 202
    assert quota(registry, "show", ns) == f"{ns}: 0 B used, quota 10 KiB"
    assert upload(client, f"{ns}/app", second).status_code == 201
    assert quota(registry, "set", ns, "none") == f"{ns}: 5 KiB used, no quota"
    assert upload(client, f"{ns}/app", os.urandom(20 * 1024)).status_code == 201


def test_a_manifest_push_past_the_quota_is_refused(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = namespace()
    repo = f"{ns}/app"
    config = json.dumps({"architecture": "amd64", "os": "linux", "pad": "x" * 900}).encode()
    layer = os.urandom(1000)
    push_blob(client, repo, config)
    push_blob(client, repo, layer)
    used = len(config) + len(layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(LAYER, layer)],
            "annotations": {"pad": "y" * 2000},
        }
    ).encode()
    quota(registry, "set", ns, str(used + len(manifest) - 1))
    put = client.put(
        f"/v2/{repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert put.status_code == 403 and error_code(put) == "DENIED", put.text
    assert put.json()["errors"][0]["message"].startswith("quota exceeded: ")
    assert client.get(f"/v2/{repo}/manifests/v1").status_code == 404
    quota(registry, "set", ns, str(used + len(manifest)))
    put = client.put(
        f"/v2/{repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    assert put.status_code == 201, put.text
    shown = quota(registry, "show", ns)
    assert shown.startswith(f"{ns}: ") and "used, quota" in shown


def test_parallel_uploads_cannot_together_pass_the_quota(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = namespace()
    quota(registry, "set", ns, "10KiB")
    blobs = [os.urandom(4 * 1024) for _ in range(6)]
    with ThreadPoolExecutor(len(blobs)) as pool:
        answers = list(
            pool.map(lambda i: chunked_upload(client, f"{ns}/r{i}", blobs[i]), range(len(blobs)))
        )
    assert sorted(a.status_code for a in answers) == [201, 201, 403, 403, 403, 403]
    for answer in answers:
        if answer.status_code == 403:
            refused(answer, f"quota exceeded: 12 KiB of 10 KiB used in {ns}")
    assert quota(registry, "show", ns) == f"{ns}: 8 KiB used, quota 10 KiB"


def test_crane_copy_into_a_full_namespace_is_refused_with_the_usage(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    from tests.support.peers import require
    from tests.support.peers import run as run_peer
    from tests.support.push import push_image

    ns = namespace()
    source = f"src{ns}/app"
    push_image(client, source, "v1")
    quota(registry, "set", ns, "10B")
    result = run_peer(
        [
            require("crane"),
            "copy",
            "--insecure",
            f"{registry.host}/{source}:v1",
            f"{registry.host}/{ns}/app:v1",
        ],
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert "quota exceeded: " in result.stderr and f"of 10 B used in {ns}" in result.stderr, (
        result.stderr
    )
    assert client.get(f"/v2/{ns}/app/manifests/v1").status_code == 404
    assert quota(registry, "show", ns) == f"{ns}: 0 B used, quota 10 B"


def test_a_refused_mount_or_manifest_links_and_counts_nothing(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = namespace()
    repo = f"{ns}/app"
    config = json.dumps({"architecture": "amd64", "os": "linux", "n": uuid.uuid4().hex}).encode()
    push_blob(client, repo, config)
    # A layer held by another namespace: a push of ns may use it without uploading it.
    layer = os.urandom(3000)
    push_blob(client, f"other{ns}/lib", layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config),
            "layers": [descriptor(LAYER, layer)],
        }
    ).encode()
    # Room for the layer or for the manifest, not for both.
    limit = len(config) + max(len(layer), len(manifest))
    quota(registry, "set", ns, str(limit))
    before = quota(registry, "show", ns)
    assert before.startswith(f"{ns}: {len(config)} B used")

    put = client.put(
        f"/v2/{repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
    )
    refused(
        put,
        f"quota exceeded: {human(len(config) + len(layer) + len(manifest))} of "
        f"{human(limit)} used in {ns}",
    )
    assert client.head(f"/v2/{repo}/blobs/{sha256(layer)}").status_code == 404
    assert client.get(f"/v2/{repo}/manifests/{sha256(manifest)}").status_code == 404
    assert quota(registry, "show", ns) == before

    # The mount alone fits; once it is there, a mount of a second layer does not.
    mounted = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"mount": sha256(layer), "from": f"other{ns}/lib"}
    )
    assert mounted.status_code == 201, mounted.text
    second = os.urandom(2000)
    push_blob(client, f"other{ns}/lib", second)
    used = quota(registry, "show", ns)
    mounted = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"mount": sha256(second), "from": f"other{ns}/lib"}
    )
    refused(
        mounted,
        f"quota exceeded: {human(len(config) + len(layer) + len(second))} of "
        f"{human(limit)} used in {ns}",
    )
    assert client.head(f"/v2/{repo}/blobs/{sha256(second)}").status_code == 404
    assert quota(registry, "show", ns) == used

    # A new repository whose first push is a manifest made only of blobs held elsewhere: once
    # refused, the repository is not half there, and pushing to it later works.
    fresh = f"{ns}/fresh"
    other_config = json.dumps({"architecture": "arm64", "os": "linux"}).encode()
    push_blob(client, f"other{ns}/lib", other_config)
    only_mounts = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, other_config),
            "layers": [descriptor(LAYER, second)],
        }
    ).encode()
    # Room for the config, not for the layer after it.
    quota(registry, "set", ns, str(len(config) + len(layer) + len(other_config)))
    used = quota(registry, "show", ns)
    put = client.put(
        f"/v2/{fresh}/manifests/v1", content=only_mounts, headers={"Content-Type": OCI_MANIFEST}
    )
    assert put.status_code == 403 and error_code(put) == "DENIED", put.text
    assert client.get(f"/v2/{fresh}/tags/list").status_code == 404
    assert quota(registry, "show", ns) == used
    quota(registry, "set", ns, "none")
    push_blob(client, fresh, os.urandom(100))
    put = client.put(
        f"/v2/{fresh}/manifests/v1", content=only_mounts, headers={"Content-Type": OCI_MANIFEST}
    )
    assert put.status_code == 201, put.text
