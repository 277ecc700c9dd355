"""Garbage collection: Dockyard's online collector against CNCF Distribution's offline one.

Every server gets the same content: `gc_images` images of a config and `gc_layers` small
distinct layers each, spread over ten repositories and tagged, then half of the manifests
deleted by digest, as a user would. Timed is how long until the blob store on disk holds only
the blobs of the surviving manifests:

- Distribution (2.8.2 and v3.1.1): the wall time of `garbage-collect CONFIG`, which needs the
  server stopped (nothing is served meanwhile: the point of the comparison).
- Dockyard, online: from the last DELETE's answer until the listing is clean, with the
  background collector at grace 0 and a one-second interval, while the server serves. The
  collector works during the DELETEs too (paced by its interval while they keep coming, at
  once when they stop), but only what remains after the last answer is on the clock.
- Dockyard, `dockyard gc --now`: the command's wall time, the server running beside it.

Manifest GETs (wrk, as the manifest GET benchmark) are timed idle and, on Dockyard, while the
collector reclaims a fresh deletion wave: wrk starts once the first deleted blob has left the
disk and is stopped (SIGINT: it reports the time it ran) once the last one has. Distribution
serves nothing during its collection, which the table shows as 0, not as a figure.

Content is pushed and deleted on fresh servers in every round (a collection cannot be run
twice on the same garbage); only the collections and the GETs are on the clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import load, rawhttp
from bench.ops import MANIFEST_ACCEPT, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, BenchError
from bench.servers import Distribution, DistributionV3, Dockyard, Server

REPOSITORIES = 10
POLL = 0.05  # seconds between looks at the disk while a collection runs


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Image:
    """One image's bytes and digests, made before any clock starts."""

    repo: str
    tag: str
    blobs: tuple[tuple[str, bytes], ...]  # (digest, bytes): the config first
    manifest: bytes
    manifest_digest: str

    @property
    def blob_digests(self) -> list[str]:
        return [digest for digest, _ in self.blobs]


def make_images(label: str, count: int, layers: int, layer_bytes: int) -> list[Image]:
    """`count` images in REPOSITORIES repositories `gc/<label>-N`, tag `img-<n>`."""
    images = []
    for n in range(count):
        layer_data = [os.urandom(layer_bytes) for _ in range(layers)]
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"bench": f"{label}-{n}-{os.urandom(8).hex()}"}},
                "rootfs": {"type": "layers", "diff_ids": [_sha256(d) for d in layer_data]},
            },
            separators=(",", ":"),
        ).encode()
        blobs = ((_sha256(config), config), *((_sha256(d), d) for d in layer_data))
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": blobs[0][0], "size": len(config)},
                "layers": [
                    {"mediaType": OCI_LAYER, "digest": digest, "size": len(data)}
                    for digest, data in blobs[1:]
                ],
            },
            separators=(",", ":"),
        ).encode()
        images.append(
            Image(
                f"gc/{label}-{n % REPOSITORIES}",
                f"img-{n:05d}",
                blobs,
                manifest,
                _sha256(manifest),
            )
        )
    return images


async def _on_connections(base_url: str, workers: int, items: list[Any], work: Any) -> None:
    """`work(conn, item)` for every item, `workers` keep-alive connections sharing them."""
    connections = [await rawhttp.Connection(base_url).open() for _ in range(max(1, workers))]
    queue = list(reversed(items))

    async def worker(conn: rawhttp.Connection) -> None:
        while queue:
            await work(conn, queue.pop())

    try:
        await asyncio.gather(*(worker(conn) for conn in connections))
    finally:
        for conn in connections:
            await conn.close()


def push_images(base_url: str, images: list[Image], workers: int) -> None:
    """Every blob by POST then PUT ?digest=, then the manifest by tag (untimed set-up)."""

    async def push(conn: rawhttp.Connection, image: Image) -> None:
        for digest, data in image.blobs:
            headers = await conn.expect(202, "POST", f"/v2/{image.repo}/blobs/uploads/")
            target = conn.path_of(headers["location"])
            target += ("&" if "?" in target else "?") + f"digest={digest}"
            await conn.expect(201, "PUT", target, data, "application/octet-stream")
        await conn.expect(
            201, "PUT", f"/v2/{image.repo}/manifests/{image.tag}", image.manifest, OCI_MANIFEST
        )

    asyncio.run(_on_connections(base_url, workers, images, push))


def delete_manifests(base_url: str, images: list[Image], workers: int) -> None:
    """DELETE each image's manifest by digest (its tag goes with it on both servers)."""

    async def delete(conn: rawhttp.Connection, image: Image) -> None:
        await conn.expect(202, "DELETE", f"/v2/{image.repo}/manifests/{image.manifest_digest}")

    asyncio.run(_on_connections(base_url, workers, images, delete))


# ---------------------------------------------------------------------------------------------
# what the disk holds


def dockyard_listing(data_dir: Path) -> set[str]:
    """Digests under a Dockyard data folder's `blobs/<alg>/<2 hex>/<hex>`."""
    found: set[str] = set()
    root = data_dir / "blobs"
    for alg in os.scandir(root):
        for prefix in os.scandir(alg.path):
            found.update(f"{alg.name}:{entry.name}" for entry in os.scandir(prefix.path))
    return found


def distribution_listing(root: Path) -> set[str]:
    """Digests under Distribution's `docker/registry/v2/blobs/<alg>/<2 hex>/<hex>/data`."""
    found: set[str] = set()
    blobs = root / "docker" / "registry" / "v2" / "blobs"
    if not blobs.is_dir():
        return found
    for alg in os.scandir(blobs):
        for prefix in os.scandir(alg.path):
            found.update(
                f"{alg.name}:{entry.name}"
                for entry in os.scandir(prefix.path)
                if os.path.exists(os.path.join(entry.path, "data"))
            )
    return found


def dockyard_blob_file(data_dir: Path, digest: str) -> str:
    alg, hex_ = digest.split(":", 1)
    return str(data_dir / "blobs" / alg / hex_[:2] / hex_)


def wait_until_gone(paths: Iterable[str], timeout: float) -> float | None:
    """Poll until each of `paths` has been seen gone: the monotonic time the last one was,
    None on timeout. Nothing puts them back, so each is looked at until it is gone and never
    again; in the order given (the collector's, by digest) a look is usually one `stat`, which
    keeps this process off the cores the server under test needs."""
    left = list(reversed(list(paths)))
    deadline = time.monotonic() + timeout
    while True:
        while left and not os.path.exists(left[-1]):
            left.pop()
        now = time.monotonic()
        if not left:
            return now
        if now > deadline:
            return None
        time.sleep(POLL)


@dataclass
class Content:
    """The images of one deletion: those that stay and those whose manifests are deleted."""

    kept: list[Image]
    deleted: list[Image]
    manifests_are_blobs: bool  # Distribution keeps manifests among the blobs, Dockyard does not

    def _digests(self, images: list[Image]) -> set[str]:
        out = {d for image in images for d in image.blob_digests}
        if self.manifests_are_blobs:
            out |= {image.manifest_digest for image in images}
        return out

    @property
    def survivors(self) -> set[str]:
        return self._digests(self.kept)

    @property
    def garbage(self) -> set[str]:
        return self._digests(self.deleted) - self.survivors


def split(images: list[Image], manifests_are_blobs: bool) -> Content:
    """Every other image deleted: half of them, spread over every repository."""
    return Content(images[0::2], images[1::2], manifests_are_blobs)


def check_reclaimed(title: str, listing: set[str], contents: list[Content]) -> None:
    """The disk holds exactly the survivors: every garbage blob gone, every survivor there."""
    survivors = set().union(*(c.survivors for c in contents))
    garbage = set().union(*(c.garbage for c in contents))
    left = listing & garbage
    lost = survivors - listing
    extra = listing - survivors - garbage
    if left or lost or extra:
        raise BenchError(
            f"{title}: after collection {len(left)} of {len(garbage)} unreferenced blobs are "
            f"still on disk, {len(lost)} of {len(survivors)} referenced blobs are missing, "
            f"{len(extra)} unknown files"
        )


# ---------------------------------------------------------------------------------------------


def dockyard_gc_now(server: Dockyard) -> tuple[float, dict[str, Any]]:
    """`dockyard gc --now --json` on the server's data folder while it serves: seconds, report."""
    started = time.perf_counter()
    result = subprocess.run(
        [server.binary(), "gc", "--now", "--json", "--data-dir", str(server.workdir / "data")],
        capture_output=True,
        text=True,
        timeout=3600,
        env=server.env(),
        stdin=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchError(f"dockyard gc --now exited {result.returncode}: {result.stderr[-2000:]}")
    return seconds, json.loads(result.stdout)


def distribution_gc(server: Distribution) -> float:
    """`garbage-collect CONFIG` on the stopped server's folder: wall seconds."""
    if server.alive():
        raise BenchError(f"{server.title} must be stopped before its garbage-collect")
    log_path = server.workdir / "garbage-collect.log"
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        result = subprocess.run(
            [server.binary(), "garbage-collect", str(server.workdir / "config.yml")],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=3600,
            stdin=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise BenchError(f"{server.title} garbage-collect exited {result.returncode}: {tail}")
    return seconds


@dataclass
class WaveResult:
    """Manifest GETs timed while the collector reclaimed a wave, and how long it took."""

    load: load.LoadResult
    collecting_s: float
    blobs: int


def gets_during_collection(
    server: Dockyard, url: str, garbage: set[str], connections: int, threads: int, timeout: float
) -> WaveResult:
    """wrk from the moment the first blob of `garbage` leaves the disk (the collector is at
    work) to the moment the last one has (SIGINT: wrk reports over the time it ran)."""
    data = server.workdir / "data"
    paths = [dockyard_blob_file(data, d) for d in sorted(garbage)]
    deadline = time.monotonic() + timeout
    while all(os.path.exists(p) for p in paths[:: max(1, len(paths) // 64)]):
        if time.monotonic() > deadline:
            raise BenchError(f"{server.title}: the collector did not start within {timeout:.0f} s")
        time.sleep(POLL / 5)
    with load.WrkUntilStopped(
        url, headers={"Accept": MANIFEST_ACCEPT}, connections=connections, threads=threads
    ) as wrk:
        started = time.monotonic()
        finished = wait_until_gone(paths, timeout)
        if finished is None:
            raise BenchError(
                f"{server.title}: the collector did not reclaim the wave within {timeout:.0f} s"
            )
    return WaveResult(wrk.result, finished - started, len(paths))


def gc_dockyard_args(grace: int, interval: float) -> tuple[str, ...]:
    return ("--gc-grace-seconds", str(grace), "--gc-interval", f"{interval:g}")


def new_dockyard(template: Server, workdir: Path, grace: int, interval: float) -> Dockyard:
    """A Dockyard like the runner's (its extra arguments and environment) with these
    collector settings, on a fresh port."""
    extra_args: tuple[str, ...] = ()
    extra_env: dict[str, str] = {}
    if isinstance(template, Dockyard):
        extra_args, extra_env = template.extra_args, dict(template.extra_env)
    return Dockyard(
        template.key,
        template.title,
        workdir,
        extra_args=(*extra_args, *gc_dockyard_args(grace, interval)),
        extra_env=extra_env,
    )


def new_distribution(version: int, key: str, workdir: Path) -> Distribution:
    if version == 3:
        return DistributionV3(key, "Distribution v3", workdir)
    return Distribution(key, "Distribution", workdir)


__all__ = [
    "Content",
    "Image",
    "check_reclaimed",
    "delete_manifests",
    "distribution_gc",
    "distribution_listing",
    "dockyard_gc_now",
    "dockyard_listing",
    "gets_during_collection",
    "make_images",
    "push_images",
    "split",
]
