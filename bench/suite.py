"""The benchmarks: what each sets up (untimed) and what each round times, for one server."""

from __future__ import annotations

import abc
import asyncio
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from bench import events, gc, idle, load, page, rawhttp, signed, startup
from bench.ops import (
    MANIFEST_ACCEPT,
    OCI_MANIFEST,
    BenchError,
    Client,
    SmallImage,
    curl_download,
    curl_upload,
    entries,
    push_image,
    small_image,
)
from bench.payload import MiB, Pool
from bench.servers import (
    DistributionV3,
    Dockyard,
    RssWatch,
    Server,
    Sink,
    cpu_seconds,
    pss_bytes,
    tree_pids,
)


@dataclass
class Config:
    rounds: int = 3
    blob_mib: int = 512  # monolithic and chunked pushes
    chunk_mib: int = 16  # PATCH size of the chunked push
    pull_mib: int = 512
    pull_repeats: int = 3  # downloads per round; the round's value is their median
    concurrent: int = 16  # simultaneous pushes ...
    concurrent_mib: int = 32  # ... of this size each
    connections: int = 64  # wrk
    wrk_threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    wrk_seconds: float = 5.0
    wrk_warmup: float = 1.0  # once per server and wrk benchmark, untimed
    head_tool: str = "ab"  # HEAD's load generator: ab, or hey (bench.load)
    images: int = 500
    image_workers: int = 8
    tags: int = 5000
    repos: int = 1000
    page: int = 100
    list_iterations: int = 5  # listings timed per round; the round's value is their median
    big_upload_mib: int = 2048  # the upload watched for RSS growth
    setup_workers: int = 8
    gc_images: int = 1000  # images of config + gc_layers layers, half of them deleted
    gc_layers: int = 9
    gc_layer_bytes: int = 1024
    gc_wave_images: int = 1000  # all deleted while Dockyard's manifest GETs are timed
    gc_interval: float = 1.0  # Dockyard's collector interval (grace 0) for the online figures
    gc_timeout: float = 900.0  # the longest any collection may take before it counts as failed
    page_indexes: int = 20  # of the `tags` on the repository page, multi-arch indexes (newest)
    page_latency_connections: int = 1  # one browser asking at a time: the answer's own time
    # after each view's wrk runs, for what they left in flight to be answered
    page_settle_seconds: float = 1.0
    startup_repeats: int = 5  # starts per round and server; the round's value is their median
    idle_connections: int = 2000  # held open, idle, while manifest GETs are timed (`idle`)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


QUICK = dict(
    blob_mib=64,
    pull_mib=64,
    concurrent_mib=4,
    wrk_seconds=1.0,
    images=50,
    tags=500,
    repos=100,
    list_iterations=3,
    big_upload_mib=128,
    gc_images=200,
    gc_wave_images=400,
    startup_repeats=3,
    idle_connections=200,
)


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    better: str  # "higher" or "lower"
    target: str = ""  # issue 7's goal, as text
    # (ratio or None, Dockyard's median) -> met, or None when it cannot be told
    meets: Callable[[float | None, float], bool | None] | None = None
    # what the table shows for a server with no figure (or 0) by design, e.g. "not serving"
    absent: str = ""
    # the least share of the bare sink's figure (bench.sink, same run) Dockyard must reach
    # besides its ratio target; 0: not judged against the sink
    of_sink: float = 0.0


Check = Callable[[float | None, float], bool | None]


def at_least(x: float) -> Check:
    return lambda ratio, _value: None if ratio is None else ratio >= x


def at_most(x: float) -> Check:
    return lambda ratio, _value: None if ratio is None else ratio <= x


def value_at_most(x: float) -> Check:
    return lambda _ratio, value: value <= x


def value_at_least(x: float) -> Check:
    return lambda _ratio, value: value >= x


class Benchmark(abc.ABC):
    """One procedure that yields one or more metrics per round."""

    name = ""
    metrics: tuple[Metric, ...] = ()
    # the bare sink (bench.sink) answers only blob transfers: only those benchmarks run on it
    on_sink = False
    # run when `--only` names no benchmark; the long ones run only when named
    in_default = True

    def __init__(self, config: Config, pool: Pool):
        self.config = config
        self.pool = pool
        self.state: dict[str, dict[str, Any]] = {}

    def applies(self, server: Server) -> bool:
        """Whether this benchmark runs on `server` at all."""
        return self.on_sink or not isinstance(server, Sink)

    def setup(self, server: Server) -> None:
        self.state[server.key] = {}

    @abc.abstractmethod
    def run(self, server: Server, round_no: int) -> dict[str, float]:
        """One timed round against `server`."""

    def info(self) -> dict[str, Any]:
        return {}

    def teardown(self) -> None:
        """After the last round: stop whatever the benchmark started for itself."""
        return None


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def mibps(size: int, seconds: float) -> float:
    return size / MiB / seconds


def parallel(
    workers: int,
    jobs: list[Callable[[Client], object]],
    base_url: str,
    auth: httpx.Auth | None = None,
) -> None:
    """Run `jobs` on `workers` threads, each with its own keep-alive connection (untimed setup),
    with `auth` for a registry with accounts."""
    local = threading.local()
    clients: list[Client] = []
    lock = threading.Lock()

    def call(job: Callable[[Client], object]) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = Client(base_url)
            client.http.auth = auth
            with lock:
                clients.append(client)
        job(client)

    try:
        with ThreadPoolExecutor(workers) as executor:
            for future in [executor.submit(call, job) for job in jobs]:
                future.result()
    finally:
        for client in clients:
            client.close()


# ---------------------------------------------------------------------------------------------


class Listings(Benchmark):
    """Tag list of one repository with `tags` tags and catalog of `repos` repositories.

    Set up first, on an empty registry, so the catalog holds exactly `repos` repositories. "Full"
    asks for everything in one request (tags: no `n`; catalog: `n` = the count, since
    Distribution pages its catalog by 100 without it) and follows any Link; "paged" asks
    `n=page` and follows Link to the end, as a client listing page by page does.

    The tag list's paged target is judged on one page: the median time of a request for `n=100`
    tags. Distribution 2.8 ignores `n` on tag lists and answers every such request with all the
    tags and no Link, so a walk is one request there and 5,000 / 100 requests here: a walk's
    time compares round trips, not servers. The walk is still measured and printed, unjudged.
    """

    name = "listings"
    metrics = (
        Metric(
            "tags_list_full_ms", "tag list, full (ms)", "ms", "lower", "ratio <= 0.3", at_most(0.3)
        ),
        Metric(
            "tags_list_page_ms",
            "tag list, one page of 100 (ms)",
            "ms",
            "lower",
            "ratio <= 0.3",
            at_most(0.3),
        ),
        Metric("tags_list_walk_ms", "tag list, walk of all pages of 100 (ms)", "ms", "lower"),
        Metric(
            "catalog_full_ms", "catalog, full (ms)", "ms", "lower", "ratio <= 0.1", at_most(0.1)
        ),
        Metric(
            "catalog_paged_ms", "catalog, paged (ms)", "ms", "lower", "ratio <= 0.1", at_most(0.1)
        ),
    )
    tags_repo = "bench/tags"

    def setup(self, server: Server) -> None:
        super().setup(server)
        cfg = self.config
        image = small_image(label="listings")
        with Client(server.url) as client:
            push_image(client, self.tags_repo, "tag-00000", image)
        jobs: list[Callable[[Client], object]] = [
            (lambda c, t=f"tag-{i:05d}": c.put_manifest(self.tags_repo, t, image.manifest))
            for i in range(1, cfg.tags)
        ]

        def make_repo(client: Client, repo: str) -> None:
            client.mount(repo, self.tags_repo, image.config_digest)
            client.mount(repo, self.tags_repo, image.layer_digest)
            client.put_manifest(repo, "latest", image.manifest)

        jobs += [
            (lambda c, r=f"bench/catalog/repo-{i:05d}": make_repo(c, r))
            for i in range(cfg.repos - 1)
        ]
        parallel(cfg.setup_workers, jobs, server.url)
        # what the timed reads must find
        with Client(server.url) as client:
            tags = entries(
                client.list_pages(f"/v2/{self.tags_repo}/tags/list", {}, cfg.tags), "tags"
            )
            repos = entries(
                client.list_pages("/v2/_catalog", {"n": str(cfg.repos)}, cfg.repos), "repositories"
            )
        if len(set(tags)) != cfg.tags or len(set(repos)) != cfg.repos:
            raise BenchError(
                f"{server.title}: set up {cfg.tags} tags and {cfg.repos} repositories "
                f"but lists {len(set(tags))} and {len(set(repos))}"
            )

    def _time_listing(
        self,
        conn: rawhttp.Listing,
        path: str,
        params: dict[str, str],
        key: str,
        expected: int,
        per_request: list[float] | None = None,
    ) -> tuple[float, int]:
        target = f"{path}?{urlencode(params)}" if params else path
        times, requests = [], 0
        for _ in range(self.config.list_iterations):
            started = time.perf_counter()
            bodies = conn.pages(target, max_pages=expected + 2, times=per_request)
            times.append(time.perf_counter() - started)
            requests = len(bodies)
            found = len(set(entries(bodies, key)))  # parsed after the clock stopped
            if found != expected:
                raise BenchError(f"{path} {params}: {found} entries, expected {expected}")
        return statistics.median(times) * 1000, requests

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        cfg = self.config
        tags_path = f"/v2/{self.tags_repo}/tags/list"
        # Timed over plain HTTP/1.1 on one keep-alive connection (`rawhttp.Listing`): through
        # httpx a page cost the client as long as a whole round trip to `/v2/`, which hid the
        # servers' difference behind the client's own time.
        with rawhttp.Listing(server.url) as conn:
            conn.pages("/v2/", 0)
            out = {}
            out["tags_list_full_ms"], _ = self._time_listing(conn, tags_path, {}, "tags", cfg.tags)
            page_times: list[float] = []
            out["tags_list_walk_ms"], pages = self._time_listing(
                conn, tags_path, {"n": str(cfg.page)}, "tags", cfg.tags, page_times
            )
            out["tags_list_page_ms"] = statistics.median(page_times) * 1000
            self.state[server.key]["tag_pages"] = pages
            out["catalog_full_ms"], _ = self._time_listing(
                conn, "/v2/_catalog", {"n": str(cfg.repos)}, "repositories", cfg.repos
            )
            out["catalog_paged_ms"], pages = self._time_listing(
                conn, "/v2/_catalog", {"n": str(cfg.page)}, "repositories", cfg.repos
            )
            self.state[server.key]["catalog_pages"] = pages
        return out

    def info(self) -> dict[str, Any]:
        return {
            "requests_per_paged_listing": {
                key: {"tags": s.get("tag_pages"), "catalog": s.get("catalog_pages")}
                for key, s in self.state.items()
            }
        }


class PushMonolithic(Benchmark):
    name = "blob_push_monolithic"
    on_sink = True
    metrics = (
        Metric(
            "blob_push_monolithic_mibps",
            "blob push, monolithic (MiB/s)",
            "MiB/s",
            "higher",
            "ratio >= 1.5, >= 90% of sink",
            at_least(1.5),
            of_sink=0.9,
        ),
    )

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        """The upload is opened (httpx) and the blob sent with one curl PUT from a file in
        memory, as the pull and the concurrent pushes are: streaming 512 MiB through httpx took
        a third of a core on this 2-core machine, which the server under test then lacked
        (measured in one run: 2.00 with httpx sending, 2.20 with curl)."""
        blob = self.pool.blob(self.config.blob_mib * MiB)
        scratch = Path(tempfile.mkdtemp(prefix="dockyard-bench-push-", dir=memory_dir()))
        path = scratch / "blob"
        with open(path, "wb") as f:
            for piece in blob.segments():
                f.write(piece)
        try:
            os.sync()  # nobody's earlier writes are flushed on this one's clock
            with Client(server.url) as client:
                client.ping()

                def push() -> None:
                    location = client.start_upload("bench/push")
                    curl_upload(str(client._url(location, digest=blob.digest)), path)

                seconds = timed(push)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return {"blob_push_monolithic_mibps": mibps(blob.size, seconds)}


class PushChunked(Benchmark):
    name = "blob_push_chunked"
    on_sink = True
    metrics = (
        Metric(
            "blob_push_chunked_mibps",
            "blob push, chunked (MiB/s)",
            "MiB/s",
            "higher",
            "ratio >= 1.5, >= 90% of sink",
            at_least(1.5),
            of_sink=0.9,
        ),
    )

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        blob = self.pool.blob(self.config.blob_mib * MiB)
        os.sync()
        with Client(server.url) as client:
            client.ping()
            seconds = timed(
                lambda: client.push_chunked("bench/chunked", blob, self.config.chunk_mib * MiB)
            )
        return {"blob_push_chunked_mibps": mibps(blob.size, seconds)}


class Pull(Benchmark):
    name = "blob_pull"
    on_sink = True
    metrics = (
        Metric(
            "blob_pull_mibps",
            "blob pull (MiB/s)",
            "MiB/s",
            "higher",
            "ratio >= 1.0, >= 90% of sink",
            at_least(1.0),
            of_sink=0.9,
        ),
    )

    def setup(self, server: Server) -> None:
        super().setup(server)
        blob = self.pool.blob(self.config.pull_mib * MiB)
        with Client(server.url) as client:
            client.push_monolithic("bench/pull", blob)
        self.state[server.key]["blob"] = blob
        url = f"{server.url}/v2/bench/pull/blobs/{blob.digest}"
        curl_download(url, blob.size)  # warm: the page cache holds it for both servers alike

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        """`pull_repeats` downloads; the round's value is their median."""
        blob = self.state[server.key]["blob"]
        url = f"{server.url}/v2/bench/pull/blobs/{blob.digest}"
        seconds = statistics.median(
            curl_download(url, blob.size) for _ in range(self.config.pull_repeats)
        )
        return {"blob_pull_mibps": mibps(blob.size, seconds)}


class PushConcurrent(Benchmark):
    name = "blob_push_concurrent"
    on_sink = True
    metrics = (
        Metric(
            "blob_push_concurrent_mibps",
            "concurrent pushes (MiB/s, all together)",
            "MiB/s",
            "higher",
            "ratio >= 1.5, >= 90% of sink",
            at_least(1.5),
            of_sink=0.9,
        ),
    )

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        """Each push opens its upload (httpx) and sends the blob with one curl PUT from a file
        in memory, as the pull is timed with curl: sixteen httpx uploads in one Python
        process took a core of their own and, against Dockyard, set the pace."""
        cfg = self.config
        blobs = [self.pool.blob(cfg.concurrent_mib * MiB) for _ in range(cfg.concurrent)]
        scratch = Path(tempfile.mkdtemp(prefix="dockyard-bench-push-", dir=memory_dir()))
        files = []
        for index, blob in enumerate(blobs):
            path = scratch / f"blob-{index}"
            with open(path, "wb") as f:
                for piece in blob.segments():
                    f.write(piece)
            files.append(path)
        clients = [Client(server.url) for _ in blobs]
        barrier = threading.Barrier(len(blobs) + 1)
        errors: list[BaseException] = []
        for client in clients:
            client.ping()  # connected before the clock starts

        def push(client: Client, index: int) -> None:
            barrier.wait()
            try:
                location = client.start_upload(f"bench/concurrent-{index % 4}")
                curl_upload(str(client._url(location, digest=blobs[index].digest)), files[index])
            except BaseException as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=push, args=(c, i), daemon=True) for i, c in enumerate(clients)
        ]
        for thread in threads:
            thread.start()
        os.sync()
        try:
            barrier.wait()
            started = time.perf_counter()
            for thread in threads:
                thread.join(900)
            seconds = time.perf_counter() - started
        finally:
            for client in clients:
                client.close()
            shutil.rmtree(scratch, ignore_errors=True)
        if errors:
            raise errors[0]
        if any(t.is_alive() for t in threads):
            raise BenchError("concurrent pushes did not finish in 900 s")
        return {"blob_push_concurrent_mibps": mibps(sum(b.size for b in blobs), seconds)}


def memory_dir() -> str | None:
    """/dev/shm where there is one: the files the pushes send are read from memory."""
    return "/dev/shm" if os.path.isdir("/dev/shm") else None


class WrkBenchmark(Benchmark):
    """`connections` keep-alive connections for `wrk_seconds` on one URL of a small image pushed
    in setup: wrk for GET, ab (or hey, `--head-tool`) for HEAD (see bench.load)."""

    method = "GET"
    rps: Metric
    p99: Metric
    repo = "bench/hot"

    @abc.abstractmethod
    def url(self, server: Server) -> str:
        """The URL the load generator hits."""

    def setup(self, server: Server) -> None:
        super().setup(server)
        image = small_image(label="hot")
        with Client(server.url) as client:
            push_image(client, self.repo, "latest", image)
        self.state[server.key]["image"] = image
        if self.config.wrk_warmup > 0:
            self._wrk(server, self.config.wrk_warmup)

    def _wrk(self, server: Server, seconds: float) -> load.LoadResult:
        return load.run(
            self.url(server),
            method=self.method,
            headers={"Accept": MANIFEST_ACCEPT},
            connections=self.config.connections,
            threads=self.config.wrk_threads,
            seconds=seconds,
            head_tool=self.config.head_tool,
        )

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        # The server's CPU per request moves far less with the machine's other load than
        # requests per second do: the figure to compare two trees by on a shared machine.
        pids = tree_pids(server.pid)
        used = cpu_seconds(pids)
        result = self._wrk(server, self.config.wrk_seconds)
        used = cpu_seconds(pids) - used
        state = self.state[server.key]
        state.setdefault("p50_ms", []).append(result.p50_ms)
        state.setdefault("cpu_us", []).append(round(1e6 * used / max(1, result.requests), 1))
        return {self.rps.key: result.requests_per_s, self.p99.key: result.p99_ms}

    def info(self) -> dict[str, Any]:
        return {
            "tool": load.tool_for(self.method, self.config.head_tool),
            "method": self.method,
            "p50_ms": {key: s.get("p50_ms") for key, s in self.state.items()},
            "server_cpu_us_per_request": {key: s.get("cpu_us") for key, s in self.state.items()},
        }


class ManifestGet(WrkBenchmark):
    name = "manifest_get"
    rps = Metric(
        "manifest_get_rps", "manifest GET (req/s)", "req/s", "higher", "ratio >= 3.0", at_least(3.0)
    )
    p99 = Metric(
        "manifest_get_p99_ms",
        "manifest GET p99 (ms)",
        "ms",
        "lower",
        "ratio <= 0.33",
        at_most(1 / 3),
    )
    metrics = (rps, p99)

    def url(self, server: Server) -> str:
        return f"{server.url}/v2/{self.repo}/manifests/latest"


class ManifestHead(ManifestGet):
    name = "manifest_head"
    method = "HEAD"
    rps = Metric(
        "manifest_head_rps",
        "manifest HEAD (req/s)",
        "req/s",
        "higher",
        "ratio >= 3.0",
        at_least(3.0),
    )
    p99 = Metric(
        "manifest_head_p99_ms",
        "manifest HEAD p99 (ms)",
        "ms",
        "lower",
        "ratio <= 0.33",
        at_most(1 / 3),
    )
    metrics = (rps, p99)


class BlobHead(WrkBenchmark):
    name = "blob_head"
    method = "HEAD"
    rps = Metric(
        "blob_head_rps", "blob HEAD (req/s)", "req/s", "higher", "ratio >= 3.0", at_least(3.0)
    )
    p99 = Metric(
        "blob_head_p99_ms", "blob HEAD p99 (ms)", "ms", "lower", "ratio <= 0.33", at_most(1 / 3)
    )
    metrics = (rps, p99)

    def url(self, server: Server) -> str:
        image: SmallImage = self.state[server.key]["image"]
        return f"{server.url}/v2/{self.repo}/blobs/{image.layer_digest}"


class IdleConnections(ManifestGet):
    """`idle_connections` keep-alive connections that each made one request and then sent
    nothing (`bench.idle`), held open while manifest GETs are timed as in `manifest_get`:
    the memory they cost the server's whole tree (PSS after they opened minus just before) and
    the GETs' p99 with them over the same run's p99 without (issue 21: at most 64 MiB and
    1.2). The share of them still open when the timed run ends shows whether the server kept
    them: Dockyard closes a connection idle for its header timeout (10 s by default), and the
    opening and the timed run fit inside it."""

    name = "idle"
    rps = Metric("idle_get_rps", "manifest GET with idle connections (req/s)", "req/s", "higher")
    p99 = Metric("idle_get_p99_ms", "manifest GET p99 with idle connections (ms)", "ms", "lower")
    metrics = (
        Metric(
            "idle_memory_mib",
            "memory of the idle connections (MiB PSS)",
            "MiB",
            "lower",
            "<= 64 MiB",
            value_at_most(64),
        ),
        Metric(
            "idle_p99_ratio",
            "GET p99, idle connections open / none",
            "x",
            "lower",
            "<= 1.2",
            value_at_most(1.2),
        ),
        rps,
        p99,
        Metric(
            "idle_kept_share",
            "idle connections still open after the GETs",
            "share",
            "higher",
            "= 1.0",
            value_at_least(1.0),
        ),
    )
    in_default = False  # the load of thousands of connections: run with `--only idle`

    def _with_idle(self, server: Server) -> dict[str, float]:
        count = self.config.idle_connections
        time.sleep(0.3)  # what the previous run left in flight is answered
        pids = tree_pids(server.pid)
        before = pss_bytes(pids)
        with idle.IdleConnections(server.url, count, "/v2/") as held:
            # the tree again: a server may start processes for connections
            after = pss_bytes(tree_pids(server.pid))
            result = self._wrk(server, self.config.wrk_seconds)
            kept = held.still_open()
        return {
            "idle_memory_mib": (after - before) / MiB,
            self.rps.key: result.requests_per_s,
            self.p99.key: result.p99_ms,
            "idle_kept_share": kept / count,
        }

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        # which comes first alternates, as the machine's load drifts
        if round_no % 2 == 0:
            without = self._wrk(server, self.config.wrk_seconds)
            values = self._with_idle(server)
        else:
            values = self._with_idle(server)
            time.sleep(0.3)
            without = self._wrk(server, self.config.wrk_seconds)
        self.state[server.key].setdefault("p99_without_ms", []).append(without.p99_ms)
        self.state[server.key].setdefault("rps_without", []).append(without.requests_per_s)
        values["idle_p99_ratio"] = values[self.p99.key] / max(without.p99_ms, 1e-3)
        return values

    def info(self) -> dict[str, Any]:
        return {
            "idle_connections": self.config.idle_connections,
            "p99_without_ms": {key: s.get("p99_without_ms") for key, s in self.state.items()},
            "rps_without": {key: s.get("rps_without") for key, s in self.state.items()},
        }


async def _push_images(
    base_url: str, repo: str, images: list[tuple[str, SmallImage]], workers: int
) -> float:
    """`workers` pushers, each on its own keep-alive connection, share the images; the seconds
    from all connected to the last manifest acknowledged."""
    connections = [await rawhttp.Connection(base_url).open() for _ in range(workers)]
    queue = list(reversed(images))

    async def push_blob(conn: rawhttp.Connection, data: bytes, digest: str) -> None:
        headers = await conn.expect(202, "POST", f"/v2/{repo}/blobs/uploads/")
        target = conn.path_of(headers["location"])
        target += ("&" if "?" in target else "?") + f"digest={digest}"
        await conn.expect(201, "PUT", target, data, "application/octet-stream")

    async def pusher(conn: rawhttp.Connection) -> None:
        while queue:
            tag, image = queue.pop()
            await push_blob(conn, image.config, image.config_digest)
            await push_blob(conn, image.layer, image.layer_digest)
            await conn.expect(
                201, "PUT", f"/v2/{repo}/manifests/{tag}", image.manifest, OCI_MANIFEST
            )

    try:
        started = time.perf_counter()
        await asyncio.gather(*(pusher(conn) for conn in connections))
        return time.perf_counter() - started
    finally:
        for conn in connections:
            await conn.close()


class SmallImages(Benchmark):
    """`images` images (config + one 4 KiB layer + manifest, each blob POST+PUT) pushed by
    `image_workers` pushers at once into one repository per round: images per second.

    The pushers are asyncio tasks in one process speaking plain HTTP/1.1 (bench.rawhttp), each
    on its own connection: eight httpx processes, as before, spent most of the two cores
    themselves, which left the servers' difference mostly unmeasured. Beside the rate, the CPU
    time the server's whole process tree spent per image: other load on the machine moves it
    far less than the rate (not judged).
    """

    name = "small_images"
    metrics = (
        Metric(
            "small_images_per_s",
            "small images pushed (images/s)",
            "images/s",
            "higher",
            "ratio >= 2.0",
            at_least(2.0),
        ),
        Metric("small_images_cpu_ms", "server CPU per small image (ms)", "ms", "lower"),
    )

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        cfg = self.config
        repo = f"bench/images-{round_no}"
        images = [(f"img-{i:05d}", small_image(label=f"{repo}:{i}")) for i in range(cfg.images)]
        os.sync()
        pids = tree_pids(server.pid)
        used = cpu_seconds(pids)
        seconds = asyncio.run(
            _push_images(server.url, repo, images, max(1, min(cfg.image_workers, cfg.images)))
        )
        used = cpu_seconds(pids) - used
        return {
            "small_images_per_s": len(images) / seconds,
            "small_images_cpu_ms": 1000 * used / len(images),
        }


class UploadMemory(Benchmark):
    """The server tree's RSS sampled every 20 ms during one monolithic upload of
    `big_upload_mib`: growth = peak minus the RSS just before it started."""

    name = "upload_rss_growth"
    metrics = (
        Metric(
            "upload_rss_growth_mib",
            "RSS growth during big upload (MiB)",
            "MiB",
            "lower",
            "<= 32 MiB",
            value_at_most(32),
        ),
    )

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        blob = self.pool.blob(self.config.big_upload_mib * MiB)
        os.sync()
        with Client(server.url) as client:
            client.ping()
            with RssWatch(server) as watch:
                started = time.perf_counter()
                client.push_monolithic("bench/big", blob)
                seconds = time.perf_counter() - started
        self.state[server.key].setdefault("mibps", []).append(mibps(blob.size, seconds))
        return {"upload_rss_growth_mib": watch.growth / MiB}

    def info(self) -> dict[str, Any]:
        return {"upload_mibps": {key: s.get("mibps") for key, s in self.state.items()}}


def page_metrics(
    views: tuple[tuple[str, str, bool, bool], ...], target_ms: float, absent: str
) -> tuple[Metric, ...]:
    """For each view of the repository page, the median and p99 of one connection (judged
    against `target_ms`) and the req/s of many; then the tag list's same three."""
    target = f"< {target_ms:.0f} ms"
    rows = []
    for key, title, _, _ in views:
        rows += [
            Metric(
                f"{key}_median_ms",
                f"{title}: median (ms, 1 conn.)",
                "ms",
                "lower",
                target,
                value_at_most(target_ms),
                absent=absent,
            ),
            Metric(
                f"{key}_p99_ms",
                f"{title}: p99 (ms, 1 conn.)",
                "ms",
                "lower",
                target,
                value_at_most(target_ms),
                absent=absent,
            ),
            Metric(f"{key}_rps", f"{title} (req/s)", "req/s", "higher", absent=absent),
        ]
    title = "same repository, tags/list?n=50"
    rows += [
        Metric("page_tags_list_median_ms", f"{title}: median (ms, 1 conn.)", "ms", "lower"),
        Metric("page_tags_list_p99_ms", f"{title}: p99 (ms, 1 conn.)", "ms", "lower"),
        Metric("page_tags_list_rps", f"{title} (req/s)", "req/s", "higher"),
    ]
    return tuple(rows)


class RepositoryPage(Benchmark):
    """Issue 17's repository page on one repository of `tags` tags (the newest `page_indexes`
    of them multi-arch indexes of three platforms, so the first page renders platforms and
    their sizes): the first page as a browser asks for it (`GET /r/NAME`) and a filtered page
    (`?q=` matching about 100 tags, see `bench.page.filter_for`), anonymous (the repository is
    public) and signed in (the session cookie of a sign-in through the form). Each is timed
    twice with wrk: on one connection (the median and p99 are the time of an answer, judged
    against 100 ms) and on `connections` (req/s).

    The page needs accounts, which the runner's Dockyard runs without: set-up starts a
    Dockyard of its own with `--auth` (otherwise the runner's settings) beside it, stopped
    after the last round. Distribution has no page; the reference row beside a peer is the
    tag list of the same repository, `/v2/NAME/tags/list?n=50` (Distribution 2.8 ignores `n`
    on tags and answers all of them), anonymous on Dockyard.
    """

    name = "page"
    in_default = False  # about 4 minutes: run with `--only page`
    no_page = "no page"
    target_ms = 100.0
    views = (
        ("page_first_anonymous", "repository page, anonymous", False, False),
        ("page_first_signed_in", "repository page, signed in", True, False),
        ("page_filtered_anonymous", "repository page ?q=, anonymous", False, True),
        ("page_filtered_signed_in", "repository page ?q=, signed in", True, True),
    )
    metrics = page_metrics(views, target_ms, no_page)

    def setup(self, server: Server) -> None:
        super().setup(server)
        cfg = self.config
        state = self.state[server.key]
        target = server
        auth = None
        if isinstance(server, Dockyard):
            workdir = server.workdir.parent / "page"
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            target = state["server"] = page.new_dockyard(server, workdir)
            target.start()
            state["pid"] = target.pid
            auth = page.admin_auth()
        page.fill(
            target.url,
            cfg.tags,
            cfg.page_indexes,
            lambda jobs: parallel(cfg.setup_workers, jobs, target.url, auth),
            auth,
        )
        plain, multi = page.tag_names(cfg.tags, cfg.page_indexes)
        state["urls"] = {
            "page_tags_list": (f"{target.url}/v2/{page.REPOSITORY}/tags/list?n=50", {})
        }
        if not isinstance(server, Dockyard):
            return
        page.make_public(target.url)
        cookie = page.sign_in(target.url)
        newest = multi[-1] if multi else plain[-1]
        query = page.filter_for(plain)
        state["query"] = query
        for key, _, signed_in, contains in self.views:
            path = f"/r/{page.REPOSITORY}" + (f"?q={query}" if contains else "")
            # The filtered tags were pushed in parallel: which come first is not known.
            expect = [query] if contains else [newest, "linux/arm64"] if multi else [newest]
            page.check_page(target.url, path, cookie if signed_in else None, expect)
            state["urls"][key] = (target.url + path, {"Cookie": cookie} if signed_in else {})
        if cfg.wrk_warmup > 0:
            for url, headers in state["urls"].values():
                self._wrk(url, headers, cfg.connections, cfg.wrk_warmup)
            time.sleep(cfg.page_settle_seconds)

    def _wrk(
        self, url: str, headers: dict[str, str], connections: int, seconds: float
    ) -> load.LoadResult:
        return load.run(
            url,
            headers=headers,
            connections=connections,
            threads=self.config.wrk_threads,
            seconds=seconds,
        )

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        cfg = self.config
        out: dict[str, float] = {}
        for key, (url, headers) in self.state[server.key]["urls"].items():
            one = self._wrk(url, headers, cfg.page_latency_connections, cfg.wrk_seconds)
            many = self._wrk(url, headers, cfg.connections, cfg.wrk_seconds)
            # What wrk left in flight is answered before the next one-connection run.
            time.sleep(cfg.page_settle_seconds)
            out[f"{key}_median_ms"] = one.p50_ms
            out[f"{key}_p99_ms"] = one.p99_ms
            out[f"{key}_rps"] = many.requests_per_s
        return out

    def teardown(self) -> None:
        for state in self.state.values():
            started = state.pop("server", None)
            if started is not None:
                started.stop()  # its folder is the runner's to remove (or keep: --keep)

    def info(self) -> dict[str, Any]:
        return {
            "pids": {key: s["pid"] for key, s in self.state.items() if "pid" in s},
            "filter": {key: s["query"] for key, s in self.state.items() if "query" in s},
            "urls": {key: sorted(s.get("urls", {})) for key, s in self.state.items()},
        }


class GarbageCollection(Benchmark):
    """Reclaiming half of `gc_images` images (bench.gc): Dockyard's online collector and
    `dockyard gc --now` against `garbage-collect` of Distribution 2.8.2 and v3.1.1, which must
    stop serving; manifest GETs idle and, on Dockyard, during a collection.

    The runner's own servers stay idle: each round starts its own, on free ports with fresh
    folders beside theirs, since a collection consumes the content it is timed on and the
    collector's settings differ from the runner's Dockyard. In the Distribution column's turn
    both versions run, in alternating order.
    """

    name = "gc"
    in_default = False  # about 20 minutes: run with `--only gc`
    not_serving = "not serving"
    metrics = (
        Metric(
            "gc_reclaim_online_s",
            "GC reclaim: Dockyard online vs Dist. offline (s)",
            "s",
            "lower",
            "ratio <= 0.5",
            at_most(0.5),
        ),
        Metric(
            "gc_reclaim_now_s",
            "GC reclaim: `dockyard gc --now` vs Dist. offline (s)",
            "s",
            "lower",
            "ratio <= 0.5",
            at_most(0.5),
        ),
        Metric(
            "gc_reclaim_online_v3_s",
            "GC reclaim: Dockyard online vs Dist. v3 offline (s)",
            "s",
            "lower",
            "ratio <= 0.5",
            at_most(0.5),
        ),
        Metric(
            "gc_reclaim_now_v3_s",
            "GC reclaim: `dockyard gc --now` vs Dist. v3 offline (s)",
            "s",
            "lower",
            "ratio <= 0.5",
            at_most(0.5),
        ),
        Metric("gc_get_idle_rps", "GC: manifest GET, idle (req/s)", "req/s", "higher"),
        Metric(
            "gc_get_during_rps",
            "GC: manifest GET during collection (req/s)",
            "req/s",
            "higher",
            absent=not_serving,
        ),
        Metric(
            "gc_get_during_p99_ms",
            "GC: manifest GET p99 during collection (ms)",
            "ms",
            "lower",
            absent=not_serving,
        ),
        Metric(
            "gc_get_during_over_idle",
            "GC: manifest GET req/s during collection / idle",
            "ratio",
            "higher",
            ">= 0.8 (own idle)",
            value_at_least(0.8),
            absent=not_serving,
        ),
    )

    def _workdir(self, server: Server, round_no: int, name: str) -> Path:
        path = server.workdir.parent / "gc" / f"{name}-{round_no}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def _images(self, label: str, count: int) -> list[gc.Image]:
        cfg = self.config
        return gc.make_images(label, count, cfg.gc_layers, cfg.gc_layer_bytes)

    def _idle_gets(self, url: str) -> load.LoadResult:
        cfg = self.config
        if cfg.wrk_warmup > 0:
            self._wrk(url, cfg.wrk_warmup)
        return self._wrk(url, cfg.wrk_seconds)

    def _wrk(self, url: str, seconds: float) -> load.LoadResult:
        cfg = self.config
        return load.run(
            url,
            headers={"Accept": MANIFEST_ACCEPT},
            connections=cfg.connections,
            threads=cfg.wrk_threads,
            seconds=seconds,
        )

    def applies(self, server: Server) -> bool:
        # Distribution's turn collects with 2.8.2 and v3 alike, on servers of its own.
        return super().applies(server) and not isinstance(server, DistributionV3)

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        if isinstance(server, Dockyard):
            return self._dockyard(server, round_no)
        versions = [2, 3] if round_no % 2 else [3, 2]
        out: dict[str, float] = {}
        for version in versions:
            out.update(self._distribution(server, round_no, version))
        return out

    def _dockyard(self, template: Server, round_no: int) -> dict[str, float]:
        cfg = self.config
        workdir = self._workdir(template, round_no, "dockyard")
        now_images = self._images("now", cfg.gc_images)
        online_images = self._images("online", cfg.gc_images)
        wave_images = self._images("wave", cfg.gc_wave_images)
        hot = self._images("hot", 1)
        now = gc.split(now_images, manifests_are_blobs=True)
        online = gc.split(online_images, manifests_are_blobs=True)
        wave = gc.Content(hot, wave_images, manifests_are_blobs=True)
        untouched = {
            "online": gc.Content(online_images, [], manifests_are_blobs=True),
            "wave": gc.Content(wave_images, [], manifests_are_blobs=True),
            "hot": gc.Content(hot, [], manifests_are_blobs=True),
        }
        round_info: dict[str, Any] = {"round": round_no}

        # Set up with the default grace delay: nothing is collected while the content arrives.
        server = gc.new_dockyard(template, workdir, grace=3600, interval=60)
        pids = round_info["pids"] = []
        try:
            server.start()
            pids.append(server.pid)
            gc.push_images(
                server.url, now_images + online_images + wave_images + hot, cfg.setup_workers
            )
            # What the pushes queued for review (every blob they linked) is reviewed first,
            # untimed: a registry serving for a while has long reviewed its old uploads.
            _, report = gc.dockyard_gc_now(server)
            if report["blobs"]:
                raise BenchError(f"dockyard gc --now reclaimed {report['blobs']} live blobs")
            gc.delete_manifests(server.url, now.deleted, cfg.setup_workers)
            os.sync()
            seconds_now, report = gc.dockyard_gc_now(server)
            round_info["gc_now_report"] = {k: report[k] for k in ("blobs", "bytes", "links")}
            gc.check_reclaimed(
                "dockyard gc --now",
                gc.dockyard_listing(workdir / "data"),
                [now, *untouched.values()],
            )
        finally:
            server.stop()

        # The same folder served with the collector at grace 0 and a short interval.
        server = gc.new_dockyard(template, workdir, grace=0, interval=cfg.gc_interval)
        try:
            server.start()
            pids.append(server.pid)
            hot_url = f"{server.url}/v2/{hot[0].repo}/manifests/{hot[0].tag}"
            idle = self._idle_gets(hot_url)
            garbage = [gc.dockyard_blob_file(workdir / "data", d) for d in sorted(online.garbage)]
            os.sync()
            gc.delete_manifests(server.url, online.deleted, cfg.setup_workers)
            last_delete = time.monotonic()
            done = gc.wait_until_gone(garbage, cfg.gc_timeout)
            if done is None:
                raise BenchError(f"Dockyard's collector left garbage after {cfg.gc_timeout} s")
            seconds_online = done - last_delete
            gc.check_reclaimed(
                "Dockyard online",
                gc.dockyard_listing(workdir / "data"),
                [now, online, untouched["wave"], untouched["hot"]],
            )

            gc.delete_manifests(server.url, wave.deleted, cfg.setup_workers)
            during = gc.gets_during_collection(
                server,
                hot_url,
                wave.garbage,
                cfg.connections,
                cfg.wrk_threads,
                cfg.gc_timeout,
            )
            gc.check_reclaimed(
                "Dockyard online, wave", gc.dockyard_listing(workdir / "data"), [now, online, wave]
            )
        finally:
            server.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        round_info.update(
            garbage_blobs=len(online.garbage),
            surviving_blobs=len(online.survivors),
            idle_p99_ms=idle.p99_ms,
            wave_blobs=during.blobs,
            wave_collecting_s=during.collecting_s,
            wave_requests=during.load.requests,
        )
        self.state[template.key].setdefault("rounds", []).append(round_info)
        return {
            "gc_reclaim_online_s": seconds_online,
            "gc_reclaim_online_v3_s": seconds_online,
            "gc_reclaim_now_s": seconds_now,
            "gc_reclaim_now_v3_s": seconds_now,
            "gc_get_idle_rps": idle.requests_per_s,
            "gc_get_during_rps": during.load.requests_per_s,
            "gc_get_during_p99_ms": during.load.p99_ms,
            "gc_get_during_over_idle": during.load.requests_per_s / idle.requests_per_s,
        }

    def _distribution(self, template: Server, round_no: int, version: int) -> dict[str, float]:
        cfg = self.config
        name = f"distribution-v{version}"
        workdir = self._workdir(template, round_no, name)
        images = self._images("online", cfg.gc_images)
        hot = self._images("hot", 1)
        content = gc.split(images, manifests_are_blobs=True)
        stays = gc.Content(hot, [], manifests_are_blobs=True)
        server = gc.new_distribution(version, template.key, workdir)
        try:
            server.start()
            gc.push_images(server.url, images + hot, cfg.setup_workers)
            idle = self._idle_gets(f"{server.url}/v2/{hot[0].repo}/manifests/{hot[0].tag}")
            gc.delete_manifests(server.url, content.deleted, cfg.setup_workers)
        finally:
            server.stop()  # its collector runs only on a registry that serves nothing
        try:
            os.sync()
            seconds = gc.distribution_gc(server)
            gc.check_reclaimed(
                f"{server.title} garbage-collect",
                gc.distribution_listing(workdir / "data"),
                [content, stays],
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        self.state[template.key].setdefault("rounds", []).append(
            {
                "round": round_no,
                "server": f"{server.title} {server.version}",
                "garbage_blobs": len(content.garbage),
                "surviving_blobs": len(content.survivors),
                "idle_rps": idle.requests_per_s,
                "idle_p99_ms": idle.p99_ms,
                "garbage_collect_s": seconds,
                "pids": [server.pid],
            }
        )
        if version == 3:
            return {"gc_reclaim_online_v3_s": seconds, "gc_reclaim_now_v3_s": seconds}
        # Not serving while it collects: no request is answered, so none is timed.
        return {
            "gc_reclaim_online_s": seconds,
            "gc_reclaim_now_s": seconds,
            "gc_get_idle_rps": idle.requests_per_s,
            "gc_get_during_rps": 0.0,
            "gc_get_during_over_idle": 0.0,
        }

    def info(self) -> dict[str, Any]:
        return {"rounds": {key: s.get("rounds") for key, s in self.state.items()}}


PEAK_RSS = Metric(
    "peak_rss_mib",
    "peak RSS, all server processes (MiB)",
    "MiB",
    "lower",
    "<= 150 MiB",
    value_at_most(150),
)
# The RSS sum counts pages a forked worker shares with its parent once per process; PSS
# splits them, so this is the memory the server really holds (shown, no target of its own).
PEAK_PSS = Metric("peak_pss_mib", "peak PSS, all server processes (MiB)", "MiB", "lower")
# Issue 21's memory target: the memory Dockyard's tree really holds (PSS) against
# Distribution's RSS (one process: its RSS is what it holds).
PEAK_MEMORY = Metric(
    "peak_memory_mib",
    "peak memory: Dockyard PSS, Distribution RSS (MiB)",
    "MiB",
    "lower",
    "ratio <= 1.5",
    at_most(1.5),
)


class SignedPull(Benchmark):
    """Manifest GETs (wrk) of a signed image under an enforced signature policy, and of the same
    image in an unprotected repository of the same server, in alternating order (bench.signed).
    The cost is the unprotected rate over the protected one; on Distribution, which keeps no
    policy, it shows what the same two runs differ by anyway."""

    name = "signed"
    rps = Metric("signed_get_rps", "signed manifest GET under enforce (req/s)", "req/s", "higher")
    cost = Metric(
        "signed_get_cost",
        "signed GET cost (unprotected req/s / protected)",
        "x",
        "lower",
        "dockyard <= 1.2",
        value_at_most(1.2),
    )
    metrics = (rps, cost)

    def setup(self, server: Server) -> None:
        super().setup(server)
        signed.prepare(server)
        if self.config.wrk_warmup > 0:
            for repo in (signed.GUARDED, signed.OPEN):
                self._get(server, repo, self.config.wrk_warmup)

    def _get(self, server: Server, repo: str, seconds: float) -> load.LoadResult:
        return signed.manifest_get(
            server, repo, self.config.connections, self.config.wrk_threads, seconds
        )

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        order = (signed.GUARDED, signed.OPEN)
        if round_no % 2:
            order = order[::-1]
        rates = {repo: self._get(server, repo, self.config.wrk_seconds) for repo in order}
        guarded = rates[signed.GUARDED].requests_per_s
        return {self.rps.key: guarded, self.cost.key: rates[signed.OPEN].requests_per_s / guarded}


class Startup(Benchmark):
    """Start to ready on an existing data folder (see `bench.startup`): `startup_repeats`
    starts per round, the round's value their median; Dockyard with its default worker count
    and with `--workers 2` (Distribution has no workers: the same start, measured again)."""

    name = "startup"
    variants = (
        ("startup_s", "start to ready, default workers (s)", ()),
        ("startup_workers2_s", "start to ready, --workers 2 (s)", ("--workers", "2")),
    )
    metrics = tuple(
        Metric(key, title, "s", "lower", "<= 0.3 s", value_at_most(0.3))
        for key, title, _ in variants
    )

    def setup(self, server: Server) -> None:
        super().setup(server)
        state = self.state[server.key]
        for key, _, args in self.variants:
            workdir = server.workdir.parent / f"startup-{server.key}-{key}"
            shutil.rmtree(workdir, ignore_errors=True)
            state[key] = startup.twin(server, workdir, args)
            startup.seconds_to_ready(state[key])  # makes the data folder, untimed

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        state = self.state[server.key]
        return {
            key: statistics.median(
                startup.seconds_to_ready(state[key]) for _ in range(self.config.startup_repeats)
            )
            for key, _, _ in self.variants
        }


class MetricsCost(Benchmark):
    """Manifest GETs (wrk, as `manifest_get`) on the runner's Dockyard, which keeps metrics as
    it does by default, and on a Dockyard of its own started with `--no-metrics` (otherwise the
    runner's settings), in alternating order: the ratio on/off is what metrics cost (issue 20:
    at least 0.95). On Distribution both runs hit the same server: what two such runs differ
    by anyway."""

    name = "metrics"
    rps = Metric("metrics_on_get_rps", "manifest GET, metrics on (req/s)", "req/s", "higher")
    ratio = Metric(
        "metrics_on_off_ratio",
        "metrics on/off (manifest GET req/s)",
        "x",
        "higher",
        "dockyard >= 0.95",
        value_at_least(0.95),
    )
    metrics = (rps, ratio)
    repo = "bench/metrics"

    def setup(self, server: Server) -> None:
        super().setup(server)
        state = self.state[server.key]
        off = server
        if isinstance(server, Dockyard):
            workdir = server.workdir.parent / "metrics-off"
            shutil.rmtree(workdir, ignore_errors=True)
            workdir.mkdir(parents=True)
            off = state["server"] = Dockyard(
                server.key,
                f"{server.title} (--no-metrics)",
                workdir,
                extra_args=(*server.extra_args, "--no-metrics"),
                extra_env=dict(server.extra_env),
            )
            off.start()
            state["pid"] = off.pid
            with Client(server.url) as client:
                if client.http.get("/metrics").status_code != 200:
                    raise BenchError("the runner's Dockyard keeps no metrics")
            with Client(off.url) as client:
                if client.http.get("/metrics").status_code != 404:
                    raise BenchError("the --no-metrics Dockyard serves /metrics")
        image = small_image(label="metrics")
        for target in {server.url: server, off.url: off}.values():
            with Client(target.url) as client:
                push_image(client, self.repo, "latest", image)
        state["urls"] = {"on": server.url, "off": off.url}
        if self.config.wrk_warmup > 0:
            for url in state["urls"].values():
                self._wrk(url, self.config.wrk_warmup)

    def _wrk(self, base: str, seconds: float) -> load.LoadResult:
        return load.run(
            f"{base}/v2/{self.repo}/manifests/latest",
            headers={"Accept": MANIFEST_ACCEPT},
            connections=self.config.connections,
            threads=self.config.wrk_threads,
            seconds=seconds,
        )

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        urls = self.state[server.key]["urls"]
        order = ("on", "off") if round_no % 2 else ("off", "on")
        rates = {side: self._wrk(urls[side], self.config.wrk_seconds) for side in order}
        on = rates["on"].requests_per_s
        return {self.rps.key: on, self.ratio.key: on / rates["off"].requests_per_s}

    def teardown(self) -> None:
        for state in self.state.values():
            started = state.pop("server", None)
            if started is not None:
                started.stop()  # its folder is the runner's to remove (or keep: --keep)

    def info(self) -> dict[str, Any]:
        return {"pids": {key: s["pid"] for key, s in self.state.items() if "pid" in s}}


class EventsGet(Benchmark):
    """Manifest GETs (wrk) with events on against off (bench.events): on Dockyard, the
    runner's server (no webhook: off) and two of its own with a webhook to a receiver here,
    one with pull events (every GET counted in one) and one without, in turn, order
    alternating by round. The ratios are on over off. Distribution has no events: its three
    runs are the same GET, so its ratios show how much such runs differ anyway."""

    name = "events"
    rps = Metric(
        "events_get_rps", "manifest GET, events and pull events on (req/s)", "req/s", "higher"
    )
    ratio = Metric(
        "events_get_ratio",
        "manifest GET, pull events on / off",
        "x",
        "higher",
        "dockyard >= 0.9",
        value_at_least(0.9),
    )
    ratio_no_pulls = Metric(
        "events_get_ratio_no_pulls", "manifest GET, events on (pulls off) / off", "x", "higher"
    )
    metrics = (rps, ratio, ratio_no_pulls)
    repo = "bench/events"
    sides = ("off", "on", "on_no_pulls")

    def setup(self, server: Server) -> None:
        super().setup(server)
        state = self.state[server.key]
        image = small_image(label="events")
        targets: dict[str, Server] = {"off": server}
        if isinstance(server, Dockyard):
            sink = state["sink"] = events.Sink()
            url = sink.start()
            for side, pulls in (("on", True), ("on_no_pulls", False)):
                own = events.new_dockyard(
                    server, server.workdir.parent / f"events-{side}", side.replace("_", " "), pulls
                )
                own.start()
                state.setdefault("servers", []).append(own)
                events.add_webhook(own, url)
                targets[side] = own
        else:
            targets["on"] = targets["on_no_pulls"] = server
        state["targets"] = targets
        for target in targets.values():
            with Client(target.url) as client:
                push_image(client, self.repo, "latest", image)
        if isinstance(server, Dockyard):
            # The pushes reached the receiver: the events really are on.
            deadline = time.monotonic() + 30
            while state["sink"].events < 2:
                if time.monotonic() > deadline:
                    raise BenchError("no event reached the webhook receiver")
                time.sleep(0.1)
        if self.config.wrk_warmup > 0:
            for target in targets.values():
                self._get(target, self.config.wrk_warmup)

    def _get(self, target: Server, seconds: float) -> load.LoadResult:
        return load.run(
            f"{target.url}/v2/{self.repo}/manifests/latest",
            headers={"Accept": MANIFEST_ACCEPT},
            connections=self.config.connections,
            threads=self.config.wrk_threads,
            seconds=seconds,
        )

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        state = self.state[server.key]
        order = self.sides if round_no % 2 == 0 else self.sides[::-1]
        before = state["sink"].events if "sink" in state else 0
        rates = {side: self._get(state["targets"][side], self.config.wrk_seconds) for side in order}
        if "sink" in state:
            state.setdefault("events_received", []).append(state["sink"].events - before)
        off = rates["off"].requests_per_s
        return {
            self.rps.key: rates["on"].requests_per_s,
            self.ratio.key: rates["on"].requests_per_s / off,
            self.ratio_no_pulls.key: rates["on_no_pulls"].requests_per_s / off,
        }

    def info(self) -> dict[str, Any]:
        # Pull events keep arriving after a round: delivery trails the load a little.
        return {"events_received": {k: s.get("events_received") for k, s in self.state.items()}}

    def teardown(self) -> None:
        for state in self.state.values():
            for own in state.get("servers", []):
                own.stop()
            if "sink" in state:
                state["sink"].stop()


BENCHMARKS: tuple[type[Benchmark], ...] = (
    Listings,
    PushMonolithic,
    PushChunked,
    Pull,
    PushConcurrent,
    ManifestGet,
    ManifestHead,
    BlobHead,
    SmallImages,
    UploadMemory,
    RepositoryPage,
    GarbageCollection,
    SignedPull,
    Startup,
    MetricsCost,
    EventsGet,
    IdleConnections,
)


def all_metrics() -> list[Metric]:
    return [m for b in BENCHMARKS for m in b.metrics] + [PEAK_RSS, PEAK_PSS, PEAK_MEMORY]
