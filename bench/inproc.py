"""CPU time of one request inside Dockyard's application, without sockets or server.

`python -m bench.inproc` builds the ASGI app as `dockyard serve` does (default settings, a data
folder of its own), pushes one small image through it, then calls it directly with manifest
GETs, manifest HEADs and blob HEADs and reports the process CPU time per request (with
`--listings`, tag lists and catalog pages of a registry filled as `python -m bench --only
listings` fills it: 5,000 tags, 1,000 repositories; a page asked again is given from the hot
reads' memory of answers, `*_page_read` are the same pages each read anew). No network,
no granian, no other process: the figure is the application's own cost, and moves little with
the machine's load, so two trees can be compared on a busy machine (`--profile` prints where
the time goes). What a client sees over HTTP is `python -m bench`'s business.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import json
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Message = dict[str, Any]
ACCEPT = (
    b"application/vnd.oci.image.manifest.v1+json,"
    b" application/vnd.docker.distribution.manifest.v2+json"
)
REPO = "bench/app"


class Caller:
    """Calls an ASGI app with one request at a time, as a server would."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.sent: list[Message] = []

    async def _send(self, message: Message) -> None:
        self.sent.append(message)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> int:
        path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 5000),
            "state": {},
        }
        chunks = [body]

        async def receive() -> Message:
            return {
                "type": "http.request",
                "body": chunks.pop() if chunks else b"",
                "more_body": False,
            }

        self.sent.clear()
        await self.app(scope, receive, self._send)
        return int(self.sent[0]["status"])


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _push(caller: Caller) -> tuple[str, str, bytes]:
    """One image (config, one 1 KiB layer, manifest tagged `latest`): the layer's and the
    config's digests, and the manifest."""
    layer = b"x" * 1024
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    for blob in (layer, config):
        status = await caller.request(
            "POST", f"/v2/{REPO}/blobs/uploads/?digest={_digest(blob)}", blob
        )
        assert status == 201, status
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    media = (b"content-type", b"application/vnd.oci.image.manifest.v1+json")
    status = await caller.request("PUT", f"/v2/{REPO}/manifests/latest", manifest, (media,))
    assert status == 201, status
    return _digest(layer), _digest(config), manifest


async def _fill(caller: Caller, image: tuple[str, str, bytes], tags: int, repos: int) -> None:
    """`tags` tags on REPO's manifest, and `repos` - 1 more repositories holding it."""
    layer, config, manifest = image
    media = (b"content-type", b"application/vnd.oci.image.manifest.v1+json")
    for i in range(1, tags):
        path = f"/v2/{REPO}/manifests/tag-{i:05d}"
        assert await caller.request("PUT", path, manifest, (media,)) == 201
    for i in range(repos - 1):
        repo = f"bench/catalog/repo-{i:05d}"
        for digest in (layer, config):
            mount = f"/v2/{repo}/blobs/uploads/?mount={digest}&from={REPO}"
            assert await caller.request("POST", mount) == 201
        path = f"/v2/{repo}/manifests/latest"
        assert await caller.request("PUT", path, manifest, (media,)) == 201


async def measure(
    data_dir: Path,
    requests: int,
    profile: bool,
    hot_reads: bool = True,
    listings: bool = False,
) -> dict[str, float]:
    """CPU microseconds per request of each kind (after a warm-up of a tenth as many);
    `hot_reads=False` sends every request through Starlette (`dockyard.api.hot_reads`)."""
    from dockyard.api.app import create_app
    from dockyard.assembly import build_registry
    from dockyard.config import Settings

    settings = Settings(data_dir=data_dir)
    app = create_app(settings, build_registry(settings, migrate=True), hot_reads=hot_reads)
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    assert started["type"] == "lifespan.startup.complete", started
    caller = Caller(app)
    image = await _push(caller)
    kinds = {
        "manifest_get": ("GET", f"/v2/{REPO}/manifests/latest"),
        "manifest_head": ("HEAD", f"/v2/{REPO}/manifests/latest"),
        "blob_head": ("HEAD", f"/v2/{REPO}/blobs/{image[0]}"),
    }
    if listings:
        await _fill(caller, image, 5000, 1000)
        kinds = {
            "tags_full": ("GET", f"/v2/{REPO}/tags/list"),
            "tags_page": ("GET", f"/v2/{REPO}/tags/list?n=100&last=tag-02500"),
            "catalog_full": ("GET", "/v2/_catalog?n=1000"),
            "catalog_page": ("GET", "/v2/_catalog?n=100&last=bench/catalog/repo-00500"),
            # The same pages, each request with a query of its own ("{i}": a parameter the
            # handlers ignore), so none is given again from the hot reads' memory of answers
            # (as a page asked once after a change, or any page with accounts on).
            "tags_page_read": ("GET", f"/v2/{REPO}/tags/list?n=100&last=tag-02500&i={{i}}"),
            "catalog_page_read": (
                "GET",
                "/v2/_catalog?n=100&last=bench/catalog/repo-00500&i={i}",
            ),
        }
    results: dict[str, float] = {}
    for kind, (method, path) in kinds.items():
        headers = ((b"accept", ACCEPT),)
        warm_up = max(1, requests // 10)
        targets = [path]
        if "{i}" in path:  # the warm-up's targets after the timed ones: none asked twice
            targets = [path.format(i=i) for i in range(requests + warm_up)]
        for i in range(warm_up):
            target = targets[(requests + i) % len(targets)]
            assert await caller.request(method, target, b"", headers) == 200
        profiler = cProfile.Profile() if profile else None
        before = time.process_time()
        if profiler is not None:
            profiler.enable()
        for i in range(requests):
            await caller.request(method, targets[i % len(targets)], b"", headers)
        if profiler is not None:
            profiler.disable()
        results[kind] = (time.process_time() - before) / requests * 1e6
        if profiler is not None:
            print(f"--- {kind}")
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    results.update(await _measure_pushes(caller, max(1, requests // 20), profile))
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await lifespan
    return results


async def _measure_pushes(caller: Caller, images: int, profile: bool) -> dict[str, float]:
    """CPU microseconds of each request of a small image's push as `bench`'s small_images sends
    them (POST, then PUT with the blob and `?digest=`, for a config and a 4 KiB layer; then the
    manifest), one image after another: the worker threads' CPU is counted with the request
    that waited for it."""
    from bench.ops import OCI_MANIFEST, small_image

    pushed = [small_image(label=f"inproc:{i}") for i in range(images + max(1, images // 10))]
    spent = {"blob_post": 0.0, "blob_put": 0.0, "manifest_put": 0.0}
    media = ((b"content-type", OCI_MANIFEST.encode()),)
    profiler = cProfile.Profile() if profile else None

    async def timed(kind: str, method: str, path: str, body: bytes, *headers: Any) -> None:
        before = time.process_time()
        if profiler is not None:
            profiler.enable()
        status = await caller.request(method, path, body, tuple(headers))
        if profiler is not None:
            profiler.disable()
        spent[kind] += time.process_time() - before
        assert status in (201, 202), (kind, status)

    for n, image in enumerate(pushed):
        if n == len(pushed) - images:  # the first tenth warms up
            spent = dict.fromkeys(spent, 0.0)
            if profiler is not None:
                profiler = cProfile.Profile()
        for blob, digest in (
            (image.config, image.config_digest),
            (image.layer, image.layer_digest),
        ):
            await timed("blob_post", "POST", f"/v2/{REPO}/blobs/uploads/", b"")
            location = dict(caller.sent[0]["headers"])[b"location"].decode()
            await timed("blob_put", "PUT", f"{location}?digest={digest}", blob)
        await timed("manifest_put", "PUT", f"/v2/{REPO}/manifests/img-{n}", image.manifest, *media)
    if profiler is not None:
        print("--- small image push")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)
    return {
        "blob_post": spent["blob_post"] / (2 * images) * 1e6,
        "blob_put": spent["blob_put"] / (2 * images) * 1e6,
        "manifest_put": spent["manifest_put"] / images * 1e6,
        "small_image": sum(spent.values()) / images * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.inproc", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=20_000, help="requests of each kind")
    parser.add_argument("--profile", action="store_true", help="cProfile each kind (slower)")
    parser.add_argument(
        "--listings", action="store_true", help="tag lists and catalog pages instead"
    )
    parser.add_argument("--json", action="store_true", help="the figures as one JSON object")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also through Starlette's route (no hot reads), alternating, --rounds times",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --compare")
    args = parser.parse_args(argv)
    if not args.compare:
        with tempfile.TemporaryDirectory(prefix="dockyard-inproc-") as folder:
            results = asyncio.run(
                measure(Path(folder) / "data", args.requests, args.profile, True, args.listings)
            )
        if args.json:
            print(json.dumps(results))
        else:
            for kind, micros in results.items():
                print(f"{kind:17} {micros:7.1f} µs of CPU per request")
        return 0
    # Alternating the two, each in a folder of its own: the machine's load falls on both.
    rounds: dict[str, list[dict[str, float]]] = {"hot": [], "starlette": []}
    for _ in range(args.rounds):
        for name, hot in (("hot", True), ("starlette", False)):
            with tempfile.TemporaryDirectory(prefix="dockyard-inproc-") as folder:
                figures = asyncio.run(
                    measure(Path(folder) / "data", args.requests, False, hot, args.listings)
                )
            rounds[name].append(figures)
    medians = {
        name: {kind: statistics.median(r[kind] for r in runs) for kind in runs[0]}
        for name, runs in rounds.items()
    }
    if args.json:
        print(json.dumps(medians))
    else:
        print(f"{'µs of CPU per request':22} {'hot reads':>10} {'Starlette':>10}")
        for kind in medians["hot"]:
            print(f"{kind:22} {medians['hot'][kind]:10.1f} {medians['starlette'][kind]:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
