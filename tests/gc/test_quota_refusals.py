"""What a quota refusal leaves behind, with the background collector running (grace 0) on
filesystem + SQLite and on S3 + PostgreSQL: bytes published before the refusal leave the disk
or the bucket without `dockyard gc`'s full listing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.content_lock import ContentLock, FileContentLock
from tests.conftest import s3_postgres_env
from tests.gc.test_gc_race import COLLECTING, Deployment
from tests.support.push import LAYER, OCI_CONFIG, OCI_MANIFEST, descriptor, error_code, sha256
from tests.support.server import RunningRegistry, free_port


@pytest.fixture(params=["filesystem+sqlite", "s3+postgresql"])
def collecting(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """One server whose background collector runs every 0.2 s with a grace delay of 0."""
    env = dict(COLLECTING)
    if request.param == "s3+postgresql":
        env |= s3_postgres_env(
            request.getfixturevalue("s3_server"),
            request.getfixturevalue("pg_cluster"),
            redirect=False,
        )
    data_dir = tmp_path / "data"
    server = RunningRegistry(data_dir=data_dir, port=free_port(), env=env, log_dir=tmp_path)
    server.start()
    yield Deployment([server], data_dir, env)
    server.stop()


def set_quota(deployment: Deployment, namespace: str, limit: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "policy", "quota", "set", namespace, limit],
        env={**os.environ, **deployment.env, "DOCKYARD_DATA_DIR": str(deployment.data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


@contextlib.contextmanager
def sweep_held(deployment: Deployment) -> Iterator[None]:
    """Hold the content lock exclusively, as a collector of another process does while it
    sweeps: pushes that passed their first quota look wait at the lock, then publish together."""
    taken, release = threading.Event(), threading.Event()

    async def hold() -> None:
        meta = None
        lock: ContentLock
        if "DOCKYARD_METADATA" in deployment.env:
            meta = SQLMetadataStore.open_postgres(deployment.env["DOCKYARD_METADATA"])
            shared = meta.shared_content_lock()
            assert shared is not None
            lock = shared
        else:
            lock = FileContentLock(deployment.data_dir / "content.lock")
        try:
            async with lock.sweeping():
                taken.set()
                await asyncio.to_thread(release.wait)
        finally:
            if meta is not None:
                await meta.close()

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    try:
        assert taken.wait(60), "the content lock was never taken"
        yield
    finally:
        release.set()
        holder.join(60)


def wait_until_gone(deployment: Deployment, digests: set[str]) -> set[str]:
    """Digests of `digests` still in the store once the collector had 30 s to remove them."""
    deadline = time.monotonic() + 30
    while (left := digests & deployment.stored_digests()) and time.monotonic() < deadline:
        time.sleep(0.3)
    return left


def started_upload(client: httpx.Client, repo: str, data: bytes) -> str:
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    patched = client.patch(
        started.headers["Location"],
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert patched.status_code == 202, patched.text
    return str(patched.headers["Location"])


def test_bytes_of_an_upload_refused_after_publishing_are_collected(
    collecting: Deployment,
) -> None:
    ns = "quota" + uuid.uuid4().hex[:10]
    set_quota(collecting, ns, "10KiB")
    blobs = [os.urandom(6 * 1024) for _ in range(4)]
    server = collecting.servers[0]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        locations = [started_upload(client, f"{ns}/r{i}", b) for i, b in enumerate(blobs)]

        def finish(i: int) -> httpx.Response:
            return client.put(locations[i], params={"digest": sha256(blobs[i])})

        with ThreadPoolExecutor(len(blobs)) as pool, sweep_held(collecting):
            answers = [pool.submit(finish, i) for i in range(len(blobs))]
            # Every request passes the look before publishing (the namespace is empty)
            # and waits for the lock; only one fits once they publish.
            time.sleep(2)
        statuses = [a.result().status_code for a in answers]
    assert sorted(statuses) == [201, 403, 403, 403], statuses
    refused = set()
    for answer, data in zip(answers, blobs, strict=True):
        response = answer.result()
        if response.status_code == 403:
            assert error_code(response) == "DENIED"
            assert response.json()["errors"][0]["message"] == (
                f"quota exceeded: 12 KiB of 10 KiB used in {ns}"
            )
            refused.add(sha256(data))
    assert not wait_until_gone(collecting, refused), "refused bytes were left in the store"


def embedded(media_type: str, data: bytes) -> dict:
    """A descriptor carrying its content: the manifest PUT stores it, no upload needed (with a
    grace delay of 0, uploaded layers could be collected before their manifest arrives)."""
    return {**descriptor(media_type, data), "data": base64.b64encode(data).decode()}


def image(config: bytes, layer: bytes) -> bytes:
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": embedded(OCI_CONFIG, config),
        "layers": [embedded(LAYER, layer)],
        "annotations": {"build": uuid.uuid4().hex},
    }
    return json.dumps(manifest).encode()


def test_concurrent_manifests_refused_for_quota_leave_no_bytes(collecting: Deployment) -> None:
    ns = "quota" + uuid.uuid4().hex[:10]
    repo = f"{ns}/app"
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    first = image(config, os.urandom(300))
    # Two images on the first one's config, each with a new layer of the same size.
    layers = [os.urandom(300), os.urandom(300)]
    bodies = [image(config, layer) for layer in layers]
    assert len(bodies[0]) == len(bodies[1])
    server = collecting.servers[0]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert put_manifest(client, repo, "v1", first).status_code == 201
        used = len(first) + len(config) + 300
        # Room for exactly one more image.
        set_quota(collecting, ns, str(used + 300 + len(bodies[0])))

        with ThreadPoolExecutor(2) as pool, sweep_held(collecting):
            answers = [
                pool.submit(put_manifest, client, repo, f"v{2 + i}", b)
                for i, b in enumerate(bodies)
            ]
            time.sleep(2)  # both pass the look before publishing, then wait for the lock
        responses = [a.result() for a in answers]
        assert sorted(r.status_code for r in responses) == [201, 403], [r.text for r in responses]
        refused = next(i for i, r in enumerate(responses) if r.status_code == 403)
        assert error_code(responses[refused]) == "DENIED"
        assert responses[refused].json()["errors"][0]["message"].startswith("quota exceeded: ")
        gone = {sha256(bodies[refused]), sha256(layers[refused])}
        assert client.get(f"/v2/{repo}/manifests/v{2 + refused}").status_code == 404
        assert client.head(f"/v2/{repo}/blobs/{sha256(layers[refused])}").status_code == 404
        kept = 1 - refused
        assert client.get(f"/v2/{repo}/manifests/v{2 + kept}").content == bodies[kept]
        assert client.get(f"/v2/{repo}/blobs/{sha256(layers[kept])}").content == layers[kept]
    assert not wait_until_gone(collecting, gone), "bytes of the refused push were left"


def put_manifest(client: httpx.Client, repo: str, tag: str, body: bytes) -> httpx.Response:
    return client.put(
        f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
