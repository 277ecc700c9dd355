"""The classic race of online garbage collection, on filesystem + SQLite (two workers) and on
S3 + PostgreSQL (two replicas): pushers push images on shared base layers (uploaded, mounted
from another repository, or skipped after a HEAD said they exist), deleters delete tags and
manifests, and collectors run all along with a grace delay of 0 (each server's background job
every 0.2 s, and `dockyard gc --now` in a loop). Afterwards every acknowledged image that was
not deleted pulls completely with the right bytes, and the store holds exactly the blobs that
the surviving manifests use: nothing lost, nothing corrupt, nothing leaked."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from dockyard.storage.filesystem import FilesystemBlobStore
from dockyard.storage.s3 import S3BlobStore
from tests.conftest import s3_postgres_env
from tests.support.push import LAYER, OCI_CONFIG, OCI_MANIFEST, descriptor, sha256
from tests.support.server import RunningRegistry, free_port

DURATION = 35.0
PUSHERS = 4
REPOS = [f"race/r{n}" for n in range(4)]
# Shared base layers: every image has two of them, pushed one of three ways.
BASES = [os.urandom(4096 + n) for n in range(6)]
GC_NOW = [sys.executable, "-m", "dockyard", "gc", "--now", "--json"]
COLLECTING = {"DOCKYARD_GC_GRACE_SECONDS": "0", "DOCKYARD_GC_INTERVAL_SECONDS": "0.2"}


@dataclass
class Deployment:
    servers: list[RunningRegistry]
    data_dir: Path
    env: dict[str, str]

    def stored_digests(self) -> set[str]:
        """Every blob the disk or the bucket holds, listed."""
        if "DOCKYARD_STORAGE" in self.env:
            store = S3BlobStore.from_url(
                self.env["DOCKYARD_STORAGE"],
                endpoint=self.env["DOCKYARD_S3_ENDPOINT"],
                region="us-east-1",
                path_style=True,
                access_key=self.env["AWS_ACCESS_KEY_ID"],
                secret_key=self.env["AWS_SECRET_ACCESS_KEY"],
                presign_seconds=None,
            )
        else:
            store = FilesystemBlobStore(self.data_dir)

        async def listing() -> set[str]:
            return {d async for d in store.iter_digests()}

        return asyncio.run(listing())

    def gc_now(self) -> dict:
        result = subprocess.run(
            [*GC_NOW, "--data-dir", str(self.data_dir)],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)


@pytest.fixture(params=["filesystem+sqlite", "s3+postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    if request.param == "filesystem+sqlite":
        data_dir, env = tmp_path / "data", dict(COLLECTING)
        servers = [
            RunningRegistry(
                data_dir=data_dir,
                port=free_port(),
                args=("--workers", "2"),
                env=env,
                log_dir=tmp_path,
            ).start()
        ]
    else:
        shared = s3_postgres_env(
            request.getfixturevalue("s3_server"),
            request.getfixturevalue("pg_cluster"),
            redirect=False,
        )
        env = {**shared, **COLLECTING}
        data_dir = tmp_path / "replica0"
        servers = [
            RunningRegistry(
                data_dir=tmp_path / f"replica{n}", port=free_port(), env=env, log_dir=tmp_path
            ).start()
            for n in range(2)
        ]
    yield Deployment(servers, data_dir, env)
    for server in servers:
        server.stop()


@dataclass
class Image:
    repo: str
    tag: str
    digest: str
    manifest: bytes
    blobs: dict[str, bytes]
    deleted: str = ""  # "", "tag" or "manifest"


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: list[Image] = field(default_factory=list)
    refused: int = 0
    mounted: int = 0
    skipped: int = 0
    collections: int = 0
    reclaimed: int = 0  # blobs the `gc --now` runs removed during the run
    failures: list[str] = field(default_factory=list)


def upload(client: httpx.Client, repo: str, data: bytes) -> None:
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data)
    assert resp.status_code == 201, resp.text


def push_base(client: httpx.Client, repo: str, data: bytes, ledger: Ledger) -> None:
    digest = sha256(data)
    how = random.choice(["upload", "mount", "head"])
    if how == "head":
        if client.head(f"/v2/{repo}/blobs/{digest}").status_code == 200:
            with ledger.lock:
                ledger.skipped += 1
            return
    elif how == "mount":
        source = random.choice([r for r in REPOS if r != repo])
        resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"mount": digest, "from": source})
        if resp.status_code == 201:
            with ledger.lock:
                ledger.mounted += 1
            return
        assert resp.status_code == 202, resp.text
        done = client.put(resp.headers["Location"], params={"digest": digest}, content=data)
        assert done.status_code == 201, done.text
        return
    upload(client, repo, data)


def pusher(number: int, deployment: Deployment, stop: threading.Event, ledger: Ledger) -> None:
    server = deployment.servers[number % len(deployment.servers)]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        pushed = 0
        while not stop.is_set():
            repo = random.choice(REPOS)
            config = json.dumps({"os": "linux", "nonce": uuid.uuid4().hex}).encode()
            own = os.urandom(2048)
            bases = random.sample(BASES, 2)
            body = json.dumps(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": descriptor(OCI_CONFIG, config),
                    "layers": [descriptor(LAYER, b) for b in [*bases, own]],
                }
            ).encode()
            tag = f"p{number}-{pushed}"
            pushed += 1
            # As clients do when told a layer is unknown: push the image again, up to 3 times.
            for _ in range(3):
                if push_image(client, repo, tag, bases, [own, config], body, ledger):
                    break


def push_image(
    client: httpx.Client,
    repo: str,
    tag: str,
    bases: list[bytes],
    own: list[bytes],
    body: bytes,
    ledger: Ledger,
) -> bool:
    """One attempt; True unless refused with MANIFEST_BLOB_UNKNOWN."""
    try:
        for base in bases:
            push_base(client, repo, base, ledger)
        for data in own:
            upload(client, repo, data)
        resp = client.put(
            f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST}
        )
    except AssertionError as exc:
        with ledger.lock:
            ledger.failures.append(str(exc))
        return True
    if resp.status_code == 201:
        blobs = {sha256(b): b for b in [*bases, *own]}
        image = Image(repo, tag, resp.headers["Docker-Content-Digest"], body, blobs)
        with ledger.lock:
            ledger.acknowledged.append(image)
        return True
    if resp.status_code == 400 and "MANIFEST_BLOB_UNKNOWN" in resp.text:
        with ledger.lock:
            ledger.refused += 1  # a layer collected before the manifest came: refused
        return False
    with ledger.lock:
        ledger.failures.append(f"manifest PUT {resp.status_code}: {resp.text}")
    return True


def deleter(deployment: Deployment, stop: threading.Event, ledger: Ledger) -> None:
    with httpx.Client(base_url=deployment.servers[-1].url, timeout=60) as client:
        while not stop.wait(0.15):
            with ledger.lock:
                alive = [i for i in ledger.acknowledged if not i.deleted]
                if len(alive) < 4:
                    continue
                image = random.choice(alive)
                image.deleted = random.choice(["tag", "manifest"])
            reference = image.tag if image.deleted == "tag" else image.digest
            resp = client.delete(f"/v2/{image.repo}/manifests/{reference}")
            if resp.status_code != 202:
                with ledger.lock:
                    ledger.failures.append(f"DELETE {reference}: {resp.status_code} {resp.text}")


def collector(deployment: Deployment, stop: threading.Event, ledger: Ledger) -> None:
    while not stop.is_set():
        report = deployment.gc_now()
        with ledger.lock:
            ledger.collections += 1
            ledger.reclaimed += report["blobs"]


def check_pull(client: httpx.Client, image: Image) -> list[str]:
    """What is wrong with pulling `image` (nothing, when it pulls whole and right)."""
    reference = image.digest if image.deleted == "tag" else image.tag
    resp = client.get(f"/v2/{image.repo}/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
    if resp.status_code != 200:
        return [f"lost manifest {image.repo}:{reference} ({resp.status_code})"]
    problems = [] if resp.content == image.manifest else [f"corrupt manifest {image.repo}"]
    for digest, data in image.blobs.items():
        blob = client.get(f"/v2/{image.repo}/blobs/{digest}")
        if blob.status_code != 200:
            problems.append(f"lost blob {image.repo}@{digest} ({blob.status_code})")
        elif blob.content != data:
            problems.append(f"corrupt blob {image.repo}@{digest}")
    return problems


def test_no_acknowledged_image_is_lost_and_nothing_unreferenced_stays(
    deployment: Deployment,
) -> None:
    ledger = Ledger()
    stop = threading.Event()
    threads = [
        threading.Thread(target=pusher, args=(n, deployment, stop, ledger)) for n in range(PUSHERS)
    ]
    threads += [
        threading.Thread(target=deleter, args=(deployment, stop, ledger)),
        threading.Thread(target=collector, args=(deployment, stop, ledger)),
    ]
    for thread in threads:
        thread.start()
    time.sleep(DURATION)
    stop.set()
    for thread in threads:
        thread.join(120)
    assert ledger.failures == [], ledger.failures[:5]
    final = deployment.gc_now()

    images = ledger.acknowledged
    undeleted = [i for i in images if i.deleted != "manifest"]
    problems: list[str] = []
    with httpx.Client(base_url=deployment.servers[0].url, timeout=60) as client:
        for image in undeleted:
            problems += check_pull(client, image)
        for image in images:
            if image.deleted == "manifest":
                gone = client.get(f"/v2/{image.repo}/manifests/{image.digest}")
                assert gone.status_code == 404, image
    summary = (
        f"{len(images)} acknowledged, {len(undeleted)} not deleted, {ledger.refused} refused, "
        f"{ledger.mounted} mounted, {ledger.skipped} skipped after HEAD, "
        f"{ledger.collections} gc --now runs reclaimed {ledger.reclaimed} blobs, the last "
        f"{final['blobs']}"
    )
    print(summary)
    assert problems == [], f"{len(problems)} problems ({summary}): {problems[:10]}"
    assert len(images) >= 20 and ledger.refused + ledger.skipped + ledger.mounted > 0, summary
    assert sum(i.deleted == "manifest" for i in images) >= 5, summary
    assert ledger.reclaimed > 0, summary

    # Nothing leaks: the disk or bucket holds what the surviving manifests use, and no more.
    wanted = set()
    for image in undeleted:
        wanted |= {image.digest, *image.blobs}
    stored = deployment.stored_digests()
    assert stored - wanted == set(), f"{len(stored - wanted)} unreferenced blobs stayed"
    assert wanted - stored == set()
