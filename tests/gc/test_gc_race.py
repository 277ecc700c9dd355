"""The classic race of online garbage collection, on filesystem + SQLite (two workers) and on
S3 + PostgreSQL (two replicas): pushers push images on shared base layers (uploaded, mounted
from another repository, or skipped after a HEAD said they exist), a deleter deletes tags,
manifests and whole repositories (over `/api/v1` and with `dockyard repo delete` beside the
servers) while the pushers push into them again, and collectors run all along with a grace
delay of 0 (each server's background job every 0.2 s, and `dockyard gc --now` in a loop).
Afterwards every acknowledged image that was not deleted pulls completely with the right
bytes, those a repository deletion came after are gone, and the store holds exactly the blobs
that the surviving manifests use: nothing lost, nothing corrupt, nothing leaked.

`DOCKYARD_RACE_SECONDS` sets how long the workload runs at least on each backend (10 s by
default, 60 s or more for a long run); it goes on, bounded, until each case the assertions
judge has happened: enough acknowledged images, manifests and repositories deleted, an image
pushed into a deleted repository."""

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.storage.filesystem import FilesystemBlobStore
from dockyard.storage.s3 import S3BlobStore
from tests.conftest import s3_postgres_env
from tests.support.push import LAYER, OCI_CONFIG, OCI_MANIFEST, descriptor, sha256
from tests.support.server import RunningRegistry, free_port

# The shortest run; a run only ends once `seen_every_case`, which is what the assertions
# judge. A longer run tries more interleavings and is what DOCKYARD_RACE_SECONDS is for; the
# suite's default is short because the test has the machine to itself (`alone`) and every
# other test waits for it: each second here is a second of the whole suite, twice (both
# backends).
DURATION = float(os.environ.get("DOCKYARD_RACE_SECONDS", "10"))
MIN_ACKNOWLEDGED = 20  # fewer would prove little about the images that survive
MIN_MANIFESTS_DELETED = 5
MIN_REPOS_DELETED = 3
PUSHERS = 4
REPOS = [f"race/r{n}" for n in range(4)]
# Never deleted whole, so its images accumulate over the whole run and a blob lost early in it
# is still looked for at the end.
LONG_LIVED = REPOS[0]
# Shared base layers: every image has two of them, pushed one of three ways.
BASES = [os.urandom(4096 + n) for n in range(6)]
GC_NOW = [sys.executable, "-m", "dockyard", "gc", "--now", "--json"]
REPO_DELETE = [sys.executable, "-m", "dockyard", "repo", "delete", "--yes"]
# A whole repository goes this often, every third time with the command beside the servers.
REPO_DELETE_EVERY = 3.0
COLLECTING = {"DOCKYARD_GC_GRACE_SECONDS": "0", "DOCKYARD_GC_INTERVAL_SECONDS": "0.2"}
# The workload is bounded in time, and run beside other tests' servers (pytest-xdist, a loaded
# machine) it failed on S3 + PostgreSQL: it runs with the machine to itself.
pytestmark = pytest.mark.alone


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

    def command(self, *args: str) -> str:
        """Run a `dockyard` command on the data folder beside the running servers."""
        result = subprocess.run(
            [*args, "--data-dir", str(self.data_dir)],
            # A crash in native code (seen once: SIGABRT, nothing on stderr) names its place.
            env={**os.environ, **self.env, "PYTHONFAULTHANDLER": "1", "LIBC_FATAL_STDERR_": "1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def gc_now(self) -> dict:
        return json.loads(self.command(*GC_NOW))


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
    sent: float  # monotonic clock when the acknowledged manifest PUT was sent
    acked: float  # and when its answer came
    deleted: str = ""  # "", "tag" or "manifest"


@dataclass(frozen=True)
class Window:
    """A request on a repository, from its sending to its answer (monotonic clock)."""

    repo: str
    started: float
    finished: float


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    acknowledged: list[Image] = field(default_factory=list)
    repos_deleted: list[Window] = field(default_factory=list)
    # Uploads answered BLOB_UPLOAD_UNKNOWN: each must overlap a deletion of its repository.
    uploads_dropped: list[Window] = field(default_factory=list)
    refused: int = 0
    mounted: int = 0
    skipped: int = 0
    collections: int = 0
    reclaimed: int = 0  # blobs the `gc --now` runs removed during the run
    failures: list[str] = field(default_factory=list)


class UploadDropped(Exception):
    """An upload in flight went with its repository: the client starts the image again."""


def expect_created(resp: httpx.Response, repo: str, started: float, ledger: Ledger) -> None:
    if resp.status_code == 404 and "BLOB_UPLOAD_UNKNOWN" in resp.text:
        with ledger.lock:
            ledger.uploads_dropped.append(Window(repo, started, time.monotonic()))
        raise UploadDropped
    assert resp.status_code == 201, resp.text


def upload(client: httpx.Client, repo: str, data: bytes, ledger: Ledger) -> None:
    started = time.monotonic()
    resp = client.post(f"/v2/{repo}/blobs/uploads/", params={"digest": sha256(data)}, content=data)
    expect_created(resp, repo, started, ledger)


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
        started = time.monotonic()
        done = client.put(resp.headers["Location"], params={"digest": digest}, content=data)
        expect_created(done, repo, started, ledger)
        return
    upload(client, repo, data, ledger)


def recorded(work: Callable[..., None]) -> Callable[..., None]:
    """`work` run in a thread of the workload: an error it did not expect (a connection the
    server dropped) is a failure of the run, not a thread gone quietly with the workload it
    would have done."""

    def run(*args: Any) -> None:
        ledger = args[-1]
        try:
            work(*args)
        except Exception as exc:  # every kind is a failure of the run
            with ledger.lock:
                ledger.failures.append(f"{work.__name__}: {type(exc).__name__}: {exc}")

    return run


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
    """One attempt; True unless refused with MANIFEST_BLOB_UNKNOWN or an upload went with
    its repository."""
    try:
        for base in bases:
            push_base(client, repo, base, ledger)
        for data in own:
            upload(client, repo, data, ledger)
        sent = time.monotonic()
        resp = client.put(
            f"/v2/{repo}/manifests/{tag}", content=body, headers={"Content-Type": OCI_MANIFEST}
        )
        acked = time.monotonic()
    except UploadDropped:
        return False
    except AssertionError as exc:
        with ledger.lock:
            ledger.failures.append(str(exc))
        return True
    if resp.status_code == 201:
        blobs = {sha256(b): b for b in [*bases, *own]}
        image = Image(repo, tag, resp.headers["Docker-Content-Digest"], body, blobs, sent, acked)
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
    """Deletes a tag or a manifest every 0.15 s, and a whole repository every few seconds.
    Alone in deleting, it picks tags and manifests only among images pushed after the last
    deletion of their repository, so none of them can be gone already."""
    last_repo_delete = time.monotonic()
    with httpx.Client(base_url=deployment.servers[-1].url, timeout=60) as client:
        while not stop.wait(0.15):
            if time.monotonic() - last_repo_delete >= REPO_DELETE_EVERY:
                delete_repository(client, deployment, ledger)
                last_repo_delete = time.monotonic()
                continue
            with ledger.lock:
                alive = [i for i in ledger.acknowledged if not i.deleted and not swept(i, ledger)]
                if len(alive) < 4:
                    continue
                image = random.choice(alive)
                image.deleted = random.choice(["tag", "manifest"])
            reference = image.tag if image.deleted == "tag" else image.digest
            resp = client.delete(f"/v2/{image.repo}/manifests/{reference}")
            if resp.status_code != 202:
                with ledger.lock:
                    ledger.failures.append(f"DELETE {reference}: {resp.status_code} {resp.text}")


def swept(image: Image, ledger: Ledger) -> bool:
    """Whether a finished deletion of the image's repository may have removed it."""
    return any(d.repo == image.repo and image.sent <= d.finished for d in ledger.repos_deleted)


def delete_repository(client: httpx.Client, deployment: Deployment, ledger: Ledger) -> None:
    """Delete a repository (not the long-lived one) holding a live image, over the API or
    (every third time) with `dockyard repo delete` on the data folder."""
    with ledger.lock:
        held = sorted(
            {
                i.repo
                for i in ledger.acknowledged
                if i.repo != LONG_LIVED and i.deleted != "manifest" and not swept(i, ledger)
            }
        )
        by_command = len(ledger.repos_deleted) % 3 == 2
    if not held:
        return
    repo = random.choice(held)
    started = time.monotonic()
    try:
        if by_command:
            deployment.command(*REPO_DELETE, repo)
        else:
            resp = client.delete(f"/api/v1/repositories/{repo}")
            assert resp.status_code == 200, f"DELETE {repo}: {resp.status_code} {resp.text}"
    except AssertionError as exc:
        with ledger.lock:
            ledger.failures.append(str(exc))
        return
    with ledger.lock:
        ledger.repos_deleted.append(Window(repo, started, time.monotonic()))


def fate(image: Image, deletions: list[Window]) -> str:
    """ "gone", "alive", or "either" when its manifest PUT and a deletion of its repository
    overlapped (the server may have taken them in either order)."""
    if image.deleted == "manifest":
        return "gone"
    outcome = "alive"
    for d in deletions:
        if d.repo != image.repo:
            continue
        if image.acked < d.started:
            return "gone"
        if image.sent <= d.finished:
            outcome = "either"
    return outcome


def seen_every_case(ledger: Ledger) -> bool:
    """Whether the workload has done what the test judges afterwards: enough images
    acknowledged, manifests and whole repositories deleted, an image pushed into a repository
    after its deletion. (The collectors' work is judged from the store's listing, too slow to
    take here; they run from the start, every 0.2 s.)"""
    with ledger.lock:
        images = list(ledger.acknowledged)
        deletions = list(ledger.repos_deleted)
    fates = [fate(i, deletions) for i in images]
    return (
        len(images) >= MIN_ACKNOWLEDGED
        and sum(i.deleted == "manifest" for i in images) >= MIN_MANIFESTS_DELETED
        and len(deletions) >= MIN_REPOS_DELETED
        and any(f == "gone" and i.deleted != "manifest" for i, f in zip(images, fates, strict=True))
        # Images that survive so far, pushed after a deletion of their repository: two, as
        # the deleter may still take one before it sees the run end.
        and sum(
            f == "alive" and any(d.repo == i.repo and i.sent > d.finished for d in deletions)
            for i, f in zip(images, fates, strict=True)
        )
        >= 2
    )


def collector(deployment: Deployment, stop: threading.Event, ledger: Ledger) -> None:
    while not stop.is_set():
        try:
            report = deployment.gc_now()
        except AssertionError as exc:
            with ledger.lock:
                ledger.failures.append(f"gc --now: {exc}")
            continue
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


@pytest.mark.timeout(DURATION + max(2 * DURATION, 160.0) + 300)
def test_no_acknowledged_image_is_lost_and_nothing_unreferenced_stays(
    deployment: Deployment,
) -> None:
    ledger = Ledger()
    stop = threading.Event()
    threads = [
        threading.Thread(target=recorded(pusher), args=(n, deployment, stop, ledger))
        for n in range(PUSHERS)
    ]
    threads += [
        threading.Thread(target=recorded(deleter), args=(deployment, stop, ledger)),
        threading.Thread(target=recorded(collector), args=(deployment, stop, ledger)),
    ]
    try:
        for thread in threads:
            thread.start()
        time.sleep(DURATION)
        # At grace 0 a layer may go before its manifest comes (refused, then pushed again);
        # on a loaded machine few pushes win that race, so the run goes on, bounded, until
        # every case the assertions below judge has happened.
        deadline = time.monotonic() + max(2 * DURATION, 160.0)
        while not seen_every_case(ledger) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop.set()  # also when interrupted, or the threads would keep the run alive
    for thread in threads:
        thread.join(120)
    stored_during = deployment.stored_digests()  # before the last collection below
    final = deployment.gc_now()

    images = ledger.acknowledged
    deletions = ledger.repos_deleted
    fates = {id(i): fate(i, deletions) for i in images}
    survivors: list[Image] = []
    problems: list[str] = []
    unreadable = 0
    with httpx.Client(base_url=deployment.servers[0].url, timeout=60) as client:
        for image in images:
            if fates[id(image)] == "gone":
                gone = client.get(f"/v2/{image.repo}/manifests/{image.digest}")
                if gone.status_code != 404:
                    problems.append(f"deleted {image.repo}@{image.digest} answers {gone}")
                continue
            if fates[id(image)] == "either":
                # Taken before or after the deletion: then it is gone, or it pulls whole.
                found = client.head(f"/v2/{image.repo}/manifests/{image.digest}")
                if found.status_code == 404:
                    continue
            survivors.append(image)
            wrong = check_pull(client, image)
            unreadable += bool(wrong)
            problems += wrong

    # Nothing leaks: the disk or bucket holds what the surviving manifests use, and no more.
    wanted = set()
    for image in survivors:
        wanted |= {image.digest, *image.blobs}
    stored = deployment.stored_digests()
    leaked, missing = stored - wanted, wanted - stored

    by_repo_deletion = sum(fates[id(i)] == "gone" and i.deleted != "manifest" for i in images)
    pushed_again = sum(
        any(d.repo == i.repo and i.sent > d.finished for d in deletions) for i in survivors
    )
    summary = (
        f"{len(images)} acknowledged, {sum(i.deleted == 'manifest' for i in images)} manifests "
        f"and {sum(i.deleted == 'tag' for i in images)} tags deleted, {len(deletions)} "
        f"repositories deleted (taking {by_repo_deletion} images), "
        f"{sum(f == 'either' for f in fates.values())} pushed during a repository deletion, "
        f"{len(survivors)} survived ({pushed_again} pushed into a deleted repository), "
        f"{ledger.refused} refused, {len(ledger.uploads_dropped)} uploads dropped with their "
        f"repository, {ledger.mounted} mounted, {ledger.skipped} skipped after HEAD, "
        f"{ledger.collections} gc --now runs reclaimed {ledger.reclaimed} blobs, the last "
        f"{final['blobs']}; {unreadable} images unreadable: "
        f"{sum(p.startswith('lost') for p in problems)} lost and "
        f"{sum(p.startswith('corrupt') for p in problems)} corrupt manifests or blobs; "
        f"{len(leaked)} blobs leaked, {len(missing)} missing from the store; "
        f"{len(ledger.failures)} failed requests"
    )
    print(summary)
    for server in deployment.servers:  # a worker that died cut its clients' requests off
        assert "Unexpected exit" not in server.log(), server.log()[-3000:]
    assert ledger.failures == [], f"{summary}: {ledger.failures[:5]}"
    assert problems == [], f"{len(problems)} problems ({summary}): {problems[:10]}"
    assert (
        len(images) >= MIN_ACKNOWLEDGED and ledger.refused + ledger.skipped + ledger.mounted > 0
    ), summary
    assert sum(i.deleted == "manifest" for i in images) >= MIN_MANIFESTS_DELETED, summary
    assert len(deletions) >= MIN_REPOS_DELETED and by_repo_deletion > 0 and pushed_again > 0, (
        summary
    )
    # The collectors worked during the run: `gc --now` reclaimed, or the servers' background
    # jobs (faster at 0.2 s) had already taken a deleted image's own blobs.
    bases = {sha256(b) for b in BASES}
    collectible = {
        d
        for i in images
        if i.deleted == "manifest" or fates[id(i)] == "gone"
        for d in i.blobs
        if d not in bases
    }
    assert ledger.reclaimed > 0 or collectible - stored_during, summary
    for dropped in ledger.uploads_dropped:
        assert any(
            d.repo == dropped.repo
            and d.started <= dropped.finished
            and dropped.started <= d.finished
            for d in deletions
        ), f"upload {dropped} dropped without a deletion of its repository"
    assert leaked == set(), f"{len(leaked)} unreferenced blobs stayed"
    assert missing == set()
