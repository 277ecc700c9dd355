"""`python -m bench --scale`: how the cost of a request grows with the registry.

Dockyard's metadata store is filled through the store's own interface (bench.fill) while it
serves, step by step to each size, on filesystem + SQLite and on S3 (SeaweedFS) + PostgreSQL
(both started here as the tests start them: PostgreSQL with fsync off), `--backends`; at each
size, over HTTP:

* tag list, one page of 100 (`n=100`): the first page, a page from the middle (`last=` the
  middle tag), and the first page again right after a tag was pushed (once, when each process
  kept whole tag lists, a push made the next page read every tag again);
* manifest PUT of a new tag into that repository;
* catalog, one page of 100: the first page and one from the middle.

Each figure is the median (and p99) of `--requests` timed requests on one keep-alive
connection (`--puts` for the PUT, each followed by its page), with the server's CPU per request
(every thread of its process tree, from the kernel's per-thread run time). Target: the largest
size at most 1.5 times the smallest ("flat").

The sizes are timed one after another, minutes of filling apart, and on a shared machine the
load moves between them more than the sizes do. So a second tag repository is kept at the
smallest size (`fill.REFERENCE_REPOSITORY`), and at every size each tag figure is timed on
both repositories in turns of `TURN` requests: the grown repository over the reference, timed
in the same minute, is the growth that is judged ("largest/reference"). A registry has one
catalog, so the catalog's reference is a second Dockyard of the same backends, on stores of
its own, filled to the smallest number of repositories and timed in turns with the grown one.
Distribution, which is not judged, gets the reference tag repository only.

CNCF Distribution cannot be filled through Dockyard's store: it keeps tags and repositories as
files of its storage driver, so it is filled with HTTP pushes, at the sizes `--distribution-tags`
and `--distribution-repos` (small by default: its pushes run at a few hundred a second here, a
million tags would take over an hour). Distribution 2.8 ignores `n` on tag lists and answers
every tag.

The table and a plot of time against size on log axes (`bench.plot`, needs matplotlib: the
`bench` extra) go to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import fill
from bench.cli import fmt, machine, render
from bench.ops import OCI_MANIFEST, BenchError, Client, push_image, small_image
from bench.servers import CpuMeter, Distribution, DistributionV3, Dockyard, Server
from bench.suite import parallel

RESULTS = Path(__file__).resolve().parent / "results"
FLAT = 1.5  # the largest size's time over the smallest's, at most
PAGE = 100
BACKENDS = ("filesystem+sqlite", "s3+postgresql")
BUDGET_S = 20.0  # timed requests of one figure stop after this long ...
LEAST = 3  # ... once there are this many
ROOT = Path(__file__).resolve().parent.parent
TURN = 5  # requests on one repository before the other's turn


@dataclass(frozen=True)
class Figure:
    key: str
    title: str
    axis: str  # "tags" or "repositories": what grows


FIGURES = (
    Figure("tags_page_first_ms", "tag list, first page of 100 (ms)", "tags"),
    Figure("tags_page_middle_ms", "tag list, page of 100 from the middle (ms)", "tags"),
    Figure("tags_page_after_push_ms", "tag list, first page right after a push (ms)", "tags"),
    Figure("manifest_put_new_tag_ms", "manifest PUT, new tag (ms)", "tags"),
    Figure("catalog_page_first_ms", "catalog, first page of 100 (ms)", "repositories"),
    Figure("catalog_page_middle_ms", "catalog, page of 100 from the middle (ms)", "repositories"),
)


def sizes(text: str) -> list[int]:
    values = sorted({int(v.replace("_", "")) for v in text.split(",") if v.strip()})
    if not values or values[0] < 2:
        raise argparse.ArgumentTypeError("sizes are integers of at least 2, comma-separated")
    return values


def backends(text: str) -> list[str]:
    chosen = [b.strip() for b in text.split(",") if b.strip()]
    if not chosen or set(chosen) - set(BACKENDS):
        raise argparse.ArgumentTypeError(f"backends among {', '.join(BACKENDS)}")
    return chosen


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench --scale",
        description="Growth: tag list and catalog pages and a manifest PUT as the registry "
        "grows (Dockyard filled through its metadata store; Distribution by HTTP pushes at "
        "small sizes).",
    )
    parser.add_argument("--tags", type=sizes, default=[1_000, 100_000, 1_000_000])
    parser.add_argument("--repos", type=sizes, default=[1_000, 100_000])
    # PostgreSQL's fill is slower (one statement a tag, one transaction at a time per new
    # repository): on the shared 2-core VM about 800 tags/s and 25 repositories/s.
    parser.add_argument(
        "--pg-tags",
        type=sizes,
        default=[1_000, 100_000],
        help="tag sizes on S3+PostgreSQL (default 1000,100000)",
    )
    parser.add_argument(
        "--pg-repos",
        type=sizes,
        default=[1_000, 3_000],
        help="repository sizes on S3+PostgreSQL (default 1000,3000)",
    )
    parser.add_argument(
        "--distribution-tags",
        type=sizes,
        default=[1_000],
        help="sizes Distribution is pushed to over HTTP (default 1000)",
    )
    parser.add_argument("--distribution-repos", type=sizes, default=[1_000])
    parser.add_argument("--no-distribution", action="store_true", help="Dockyard alone")
    parser.add_argument(
        "--backends",
        type=backends,
        default=list(BACKENDS),
        help=f"Dockyard's stores, comma-separated (default {','.join(BACKENDS)})",
    )
    parser.add_argument("--requests", type=int, default=50, help="timed GETs per figure")
    parser.add_argument("--puts", type=int, default=20, help="timed PUTs per size")
    parser.add_argument("--batch", type=int, default=5_000, help="tags per store transaction")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="repositories written at once when filling"
    )
    parser.add_argument("--setup-workers", type=int, default=8, help="Distribution's pushers")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    parser.add_argument("--plot", type=Path, default=RESULTS / "scale.png")
    parser.add_argument(
        "--dockyard-arg", action="append", default=[], metavar="ARG", help="for `dockyard serve`"
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.puts < 1:
        parser.error("--requests and --puts must be at least 1")
    return args


# ---------------------------------------------------------------------------------------------
# timing over HTTP


def summary(seconds: list[float], cpu_s: float | None = None) -> dict[str, Any]:
    ms = sorted(s * 1000 for s in seconds)
    out = {
        "median_ms": statistics.median(ms),
        "p99_ms": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
        "count": len(ms),
    }
    if cpu_s is not None:
        out["cpu_us"] = cpu_s / len(ms) * 1e6
    return out


def timed_get(http: httpx.Client, path: str, params: dict[str, str]) -> tuple[float, list[str]]:
    """One GET's seconds and the names it listed (parsed after the clock stopped)."""
    started = time.perf_counter()
    response = http.get(path, params=params)
    seconds = time.perf_counter() - started
    if response.status_code != 200:
        raise BenchError(f"GET {path} {params}: {response.status_code} {response.text[:200]}")
    body = response.json()
    return seconds, body.get("tags") or body.get("repositories") or []


@dataclass
class Page:
    """One page to time: of which server, what to ask, how to check the answer, what was
    measured."""

    http: httpx.Client
    meter: CpuMeter
    path: str
    params: dict[str, str]
    check: Callable[[list[str]], None]
    times: list[float] = field(default_factory=list)
    cpu_s: float = 0.0

    def summary(self) -> dict[str, Any]:
        return summary(self.times, self.cpu_s)


def time_pages(pages: list[Page], count: int) -> None:
    """`count` timed GETs of each page after one untimed (checked) GET of each, in turns of
    `TURN`, each turn's server CPU counted to its page; or fewer (at least `LEAST` each) once
    they took `BUDGET_S` seconds a page: a page that costs seconds (every tag read again) is
    measured in minutes, not an hour."""
    for page in pages:
        _, names = timed_get(page.http, page.path, page.params)
        page.check(names)

    def more() -> bool:
        done = min(len(p.times) for p in pages)
        spent = sum(sum(p.times) for p in pages)
        return done < count and (done < LEAST or spent < BUDGET_S * len(pages))

    while more():
        for page in pages:
            page.meter.start()
            for _ in range(min(TURN, count - len(page.times))):
                page.times.append(timed_get(page.http, page.path, page.params)[0])
            page.cpu_s += page.meter.stop()


def page_check(expected: int, after: str | None) -> Callable[[list[str]], None]:
    """A page holds at least `expected` names after `after`: a server that ignores `n` and
    `last` (2.8.2 on tags) answers more."""

    def check(names: list[str]) -> None:
        if sum(1 for n in names if after is None or n > after) < expected:
            raise BenchError(f"page of {len(names)} names, expected {expected} after {after}")

    return check


def paired(grown: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """The grown repository's figure, with the reference's of the same turns beside it."""
    out = dict(grown)
    out["reference"] = reference
    out["over_reference"] = grown["median_ms"] / reference["median_ms"]
    if "cpu_us" in grown and reference.get("cpu_us"):
        out["cpu_over_reference"] = grown["cpu_us"] / reference["cpu_us"]
    return out


def measure_tags(
    server: Server, size: int, reference_size: int, requests: int, puts: int, manifest: bytes
) -> dict[str, dict[str, Any]]:
    """The tag figures of the grown repository (`size` tags), each timed in turns with the
    reference repository's (`reference_size` tags)."""
    meter = CpuMeter(server)
    repositories = (fill.TAG_REPOSITORY, fill.REFERENCE_REPOSITORY)
    counts = (size, reference_size)
    first = {"n": str(PAGE)}
    out: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=server.url, timeout=600) as http:
        firsts = [
            Page(http, meter, f"/v2/{repo}/tags/list", first, page_check(min(PAGE, n), None))
            for repo, n in zip(repositories, counts, strict=True)
        ]
        time_pages(firsts, requests)
        out["tags_page_first_ms"] = paired(firsts[0].summary(), firsts[1].summary())
        middles = []
        for repo, n in zip(repositories, counts, strict=True):
            middle = fill.tag_name(n // 2)
            middles.append(
                Page(
                    http,
                    meter,
                    f"/v2/{repo}/tags/list",
                    {"n": str(PAGE), "last": middle},
                    page_check(min(PAGE, n - n // 2 - 1), middle),
                )
            )
        time_pages(middles, requests)
        out["tags_page_middle_ms"] = paired(middles[0].summary(), middles[1].summary())
        put_times: list[list[float]] = [[], []]
        after_times: list[list[float]] = [[], []]
        put_cpu, after_cpu = [0.0, 0.0], [0.0, 0.0]
        for index in range(puts):
            spent = sum(map(sum, put_times)) + sum(map(sum, after_times))
            if index >= LEAST and spent > 2 * BUDGET_S:
                break
            tag = f"p-{size:07d}-{index:04d}"  # sorts before every filled tag: on page one
            for side, repo in enumerate(repositories):
                meter.start()
                started = time.perf_counter()
                response = http.put(
                    f"/v2/{repo}/manifests/{tag}",
                    content=manifest,
                    headers={"Content-Type": OCI_MANIFEST},
                )
                put_times[side].append(time.perf_counter() - started)
                put_cpu[side] += meter.stop()
                if response.status_code != 201:
                    raise BenchError(f"PUT {tag}: {response.status_code} {response.text[:200]}")
                meter.start()
                seconds, names = timed_get(http, f"/v2/{repo}/tags/list", first)
                after_cpu[side] += meter.stop()
                after_times[side].append(seconds)
                if tag not in names:
                    raise BenchError(f"the first page of {repo} after pushing {tag} lacks it")
        out["manifest_put_new_tag_ms"] = paired(
            summary(put_times[0], put_cpu[0]), summary(put_times[1], put_cpu[1])
        )
        out["tags_page_after_push_ms"] = paired(
            summary(after_times[0], after_cpu[0]), summary(after_times[1], after_cpu[1])
        )
    return out


def measure_catalog(
    server: Server, size: int, requests: int, reference: tuple[Server, int] | None = None
) -> dict[str, dict[str, Any]]:
    """The catalog figures of `server` (`size` repositories), each timed in turns with those of
    `reference` (another server of the same kind and its size), where there is one."""
    sides = [(server, size)] + ([reference] if reference else [])
    with contextlib.ExitStack() as stack:
        clients = [
            (stack.enter_context(httpx.Client(base_url=s.url, timeout=600)), CpuMeter(s), n)
            for s, n in sides
        ]
        firsts = [
            Page(http, meter, "/v2/_catalog", {"n": str(PAGE)}, page_check(min(PAGE, n), None))
            for http, meter, n in clients
        ]
        time_pages(firsts, requests)
        middles = [
            Page(
                http,
                meter,
                "/v2/_catalog",
                {"n": str(PAGE), "last": fill.repository_name(n // 2)},
                page_check(min(PAGE, n // 2 - 1), fill.repository_name(n // 2)),
            )
            for http, meter, n in clients
        ]
        time_pages(middles, requests)
    if reference is None:
        return {
            "catalog_page_first_ms": firsts[0].summary(),
            "catalog_page_middle_ms": middles[0].summary(),
        }
    return {
        "catalog_page_first_ms": paired(firsts[0].summary(), firsts[1].summary()),
        "catalog_page_middle_ms": paired(middles[0].summary(), middles[1].summary()),
    }


# ---------------------------------------------------------------------------------------------
# growing each server


def seed_server(server: Server) -> tuple[fill.Seed, bytes]:
    """The image every tag and repository names, pushed over HTTP as `t-0000000` of the tag
    repository: that repository is the first of the catalog's."""
    image = small_image(label="scale")
    with Client(server.url) as client:
        push_image(client, fill.TAG_REPOSITORY, fill.tag_name(0), image)
    return fill.Seed.of(image), image.manifest


@dataclass
class Grown:
    """A Dockyard of the run and how to open its metadata store from here; `reference` is
    another like it, on stores of its own, whose catalog stays at the smallest size."""

    server: Dockyard
    backend: str
    tags: list[int]
    repos: list[int]
    reference: Dockyard
    metadata_url: str = ""  # PostgreSQL's; SQLite's store is in the data folder
    reference_metadata_url: str = ""

    def fill_concurrency(self, asked: int) -> int:
        # On PostgreSQL every filled repository links the seed's blobs in the one namespace
        # `scale`, and each link moves that namespace's count of links to the blob (one row):
        # concurrent ones fail serialization, so one at a time is the fastest fill.
        return 1 if self.metadata_url else asked

    def open_store(self, server: Dockyard | None = None) -> fill.SQLMetadataStore:
        """The store of `server` (the grown one by default)."""
        server = server or self.server
        if self.metadata_url:
            url = self.metadata_url if server is self.server else self.reference_metadata_url
            return fill.open_postgres(url)
        return fill.open_sqlite(server.workdir / "data")


def dockyards(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack) -> list[Grown]:
    """One Dockyard per backend; S3 and PostgreSQL started as the tests start them (and
    stopped by `stack`)."""
    out = []
    for backend in args.backends:
        if backend == "filesystem+sqlite":
            server = Dockyard(
                "dockyard", "Dockyard", tmp / "dockyard", extra_args=tuple(args.dockyard_arg)
            )
            reference = Dockyard(
                "dockyard_reference",
                "Dockyard (reference)",
                tmp / "dockyard-reference",
                extra_args=tuple(args.dockyard_arg),
            )
            out.append(Grown(server, backend, args.tags, args.repos, reference))
            continue
        sys.path.insert(0, str(ROOT))  # the test helpers that start the peers
        from tests.support.postgres import PostgresCluster
        from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedS3

        s3 = SeaweedS3(tmp / "s3").start()
        stack.callback(s3.stop)
        pg = PostgresCluster().start()
        stack.callback(pg.stop)
        urls = [pg.create_database(), pg.create_database()]
        servers = [
            Dockyard(
                f"dockyard_s3_postgresql{suffix}",
                f"Dockyard S3+PostgreSQL{title}",
                tmp / f"dockyard-s3{suffix}",
                extra_args=tuple(args.dockyard_arg),
                extra_env={
                    "DOCKYARD_STORAGE": f"s3://{s3.create_bucket()}/r",
                    "DOCKYARD_METADATA": url,
                    "DOCKYARD_S3_ENDPOINT": s3.endpoint,
                    "DOCKYARD_S3_PATH_STYLE": "true",
                    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                },
            )
            for url, suffix, title in zip(
                urls, ("", "_reference"), ("", " (reference)"), strict=True
            )
        ]
        out.append(Grown(servers[0], backend, args.pg_tags, args.pg_repos, servers[1], *urls))
    return out


def grow_dockyard(
    grown: Grown, args: argparse.Namespace, log: Any
) -> tuple[dict[str, dict[int, Any]], dict[str, float]]:
    """Fill step by step through the store (the server serving meanwhile), measure at each."""
    server = grown.server
    seed, manifest = seed_server(server)
    results: dict[str, dict[int, Any]] = {}
    fill_seconds: dict[str, float] = {}
    loop = asyncio.new_event_loop()
    meta = grown.open_store()
    try:
        loop.run_until_complete(
            fill.add_tags(
                meta, seed, 0, grown.tags[0], args.batch, repository=fill.REFERENCE_REPOSITORY
            )
        )
        tags = 1  # the seed's
        for size in grown.tags:
            started = time.perf_counter()
            loop.run_until_complete(fill.add_tags(meta, seed, tags, size, args.batch))
            fill_seconds[f"tags_{size}"] = time.perf_counter() - started
            counted = loop.run_until_complete(fill.tag_count(meta))
            if counted != size + args.puts * grown.tags.index(size):
                raise BenchError(f"the tag repository holds {counted} tags, expected {size}")
            print(
                f"  {server.title}: {size:,} tags in {fill_seconds[f'tags_{size}']:.1f}s",
                file=log,
            )
            tags = size
            for key, value in measure_tags(
                server, size, grown.tags[0], args.requests, args.puts, manifest
            ).items():
                results.setdefault(key, {})[size] = value
        grow_reference(grown, args, loop, log)
        repos = 2  # the tag repository and its reference
        for size in grown.repos:
            started = time.perf_counter()
            again = loop.run_until_complete(
                fill.add_repositories(
                    meta, seed, repos, size, grown.fill_concurrency(args.concurrency)
                )
            )
            fill_seconds[f"repositories_{size}"] = time.perf_counter() - started
            fill_seconds[f"repositories_{size}_writes_made_again"] = again
            counted = loop.run_until_complete(fill.repository_count(meta))
            if counted != size:
                raise BenchError(f"the catalog holds {counted} repositories, expected {size}")
            print(
                f"  {server.title}: {size:,} repositories in "
                f"{fill_seconds[f'repositories_{size}']:.1f}s",
                file=log,
            )
            repos = size
            for key, value in measure_catalog(
                server, size, args.requests, (grown.reference, grown.repos[0])
            ).items():
                results.setdefault(key, {})[size] = value
    finally:
        grown.reference.stop()
        loop.run_until_complete(meta.close())
        loop.close()
    return results, fill_seconds


def grow_reference(
    grown: Grown, args: argparse.Namespace, loop: asyncio.AbstractEventLoop, log: Any
) -> None:
    """Start the reference server and fill its catalog to the smallest size; it serves until
    the grown server's catalog figures are done (`grow_dockyard` stops it)."""
    reference = grown.reference
    reference.start()
    seed, _ = seed_server(reference)
    meta = grown.open_store(reference)
    try:
        size = grown.repos[0]
        loop.run_until_complete(
            fill.add_repositories(meta, seed, 1, size, grown.fill_concurrency(args.concurrency))
        )
        counted = loop.run_until_complete(fill.repository_count(meta))
    finally:
        loop.run_until_complete(meta.close())
    if counted != size:
        raise BenchError(f"the reference catalog holds {counted} repositories, expected {size}")
    print(f"  {reference.title}: {size:,} repositories", file=log)


def grow_distribution(
    server: Server, args: argparse.Namespace, log: Any
) -> tuple[dict[str, dict[int, Any]], dict[str, float]]:
    """The same steps filled by HTTP pushes: tag PUTs of the seed, and repositories by mounting
    its blobs and putting its manifest."""
    seed, manifest = seed_server(server)
    results: dict[str, dict[int, Any]] = {}
    fill_seconds: dict[str, float] = {}
    reference_size = args.distribution_tags[0]
    with Client(server.url) as client:
        client.mount(fill.REFERENCE_REPOSITORY, fill.TAG_REPOSITORY, seed.config_digest)
        client.mount(fill.REFERENCE_REPOSITORY, fill.TAG_REPOSITORY, seed.layer_digest)
    parallel(
        args.setup_workers,
        [
            (lambda c, t=fill.tag_name(i): c.put_manifest(fill.REFERENCE_REPOSITORY, t, manifest))
            for i in range(reference_size)
        ],
        server.url,
    )
    tags = 1
    for size in args.distribution_tags:
        jobs: list[Callable[[Client], object]] = [
            (lambda c, t=fill.tag_name(i): c.put_manifest(fill.TAG_REPOSITORY, t, manifest))
            for i in range(tags, size)
        ]
        started = time.perf_counter()
        parallel(args.setup_workers, jobs, server.url)
        fill_seconds[f"tags_{size}"] = time.perf_counter() - started
        print(f"  {server.title}: {size:,} tags in {fill_seconds[f'tags_{size}']:.1f}s", file=log)
        tags = size
        for key, value in measure_tags(
            server, size, reference_size, args.requests, args.puts, manifest
        ).items():
            results.setdefault(key, {})[size] = value

    def make_repo(client: Client, repo: str) -> None:
        client.mount(repo, fill.TAG_REPOSITORY, seed.config_digest)
        client.mount(repo, fill.TAG_REPOSITORY, seed.layer_digest)
        client.put_manifest(repo, "latest", manifest)

    repos = 2  # the tag repository and its reference
    for size in args.distribution_repos:
        jobs = [(lambda c, r=fill.repository_name(i): make_repo(c, r)) for i in range(repos, size)]
        started = time.perf_counter()
        parallel(args.setup_workers, jobs, server.url)
        fill_seconds[f"repositories_{size}"] = time.perf_counter() - started
        print(
            f"  {server.title}: {size:,} repositories in "
            f"{fill_seconds[f'repositories_{size}']:.1f}s",
            file=log,
        )
        repos = size
        for key, value in measure_catalog(server, size, args.requests).items():
            results.setdefault(key, {})[size] = value
    return results, fill_seconds


# ---------------------------------------------------------------------------------------------
# results


def growth_of(by_size: dict[int, Any], key: str = "median_ms") -> float | None:
    """The largest size's `key` over the smallest's (None with fewer than two sizes)."""
    if len(by_size) < 2:
        return None
    ordered = sorted(by_size)
    small, large = by_size[ordered[0]].get(key), by_size[ordered[-1]].get(key)
    return large / small if small and large is not None else None


def judged(by_size: dict[int, Any]) -> dict[str, Any]:
    """The growth of one figure on one server: over the smallest size timed minutes before
    (sequential) and, where a reference repository was timed in the same turns, over it;
    flatness is judged on the second where there is one. CPU per request likewise."""
    growth = growth_of(by_size)
    largest = by_size[max(by_size)] if len(by_size) >= 2 else {}
    over_reference = largest.get("over_reference")
    if "cpu_over_reference" in largest:
        cpu_growth = largest["cpu_over_reference"]
    else:
        cpu_growth = growth_of(by_size, "cpu_us")
    deciding = over_reference if over_reference is not None else growth
    return {
        "largest_over_smallest": growth,
        "largest_over_reference": over_reference,
        "cpu_largest_over_smallest": cpu_growth,
        "flat": None if deciding is None else deciding <= FLAT,
    }


def build(
    servers: list[Server],
    measured: dict[str, dict[str, dict[int, Any]]],
    fill_seconds: dict[str, dict[str, float]],
    args: argparse.Namespace,
    started: float,
    started_at: str,
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for figure in FIGURES:
        per_server = {}
        for server in servers:
            by_size = measured.get(server.key, {}).get(figure.key, {})
            per_server[server.key] = {
                "by_size": {str(size): by_size[size] for size in sorted(by_size)},
                **judged(by_size),
            }
        figures[figure.key] = {
            "title": figure.title,
            "axis": figure.axis,
            "target": f"largest / smallest <= {FLAT} (Dockyard, every backend; tag figures: "
            "largest / the reference repository timed in the same turns)",
            "servers": per_server,
        }
    return {
        "schema": 1,
        "started_at": started_at,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": machine(),
        "servers": {s.key: {"title": s.title, "version": s.version, "pid": s.pid} for s in servers},
        "sizes": {
            "tags": args.tags,
            "repositories": args.repos,
            "pg_tags": args.pg_tags if "s3+postgresql" in args.backends else [],
            "pg_repositories": args.pg_repos if "s3+postgresql" in args.backends else [],
            "distribution_tags": [] if args.no_distribution else args.distribution_tags,
            "distribution_repositories": [] if args.no_distribution else args.distribution_repos,
        },
        "config": {
            "requests": args.requests,
            "puts": args.puts,
            "batch": args.batch,
            "concurrency": args.concurrency,
            "page": PAGE,
        },
        "figures": figures,
        "fill_seconds": fill_seconds,
    }


def table(results: dict[str, Any]) -> str:
    all_sizes = sorted(
        {
            int(size)
            for f in results["figures"].values()
            for s in f["servers"].values()
            for size in s["by_size"]
        }
    )
    head = (
        "figure (median ms)",
        "server",
        *(f"{size:,}" for size in all_sizes),
        "largest/smallest",
        "largest/reference",
        "CPU µs/request",
        "CPU growth",
        "target",
        "met",
    )
    rows = [head]
    for figure in results["figures"].values():
        for key, entry in figure["servers"].items():
            if not entry["by_size"]:
                continue
            growth = entry["largest_over_smallest"]
            over_reference = entry.get("largest_over_reference")
            cpu_growth = entry.get("cpu_largest_over_smallest")
            cpu = [v.get("cpu_us") for v in entry["by_size"].values()]
            judged = key.startswith("dockyard")
            rows.append(
                (
                    figure["title"],
                    results["servers"][key]["title"],
                    *(
                        fmt(entry["by_size"][str(size)]["median_ms"])
                        if str(size) in entry["by_size"]
                        else "-"
                        for size in all_sizes
                    ),
                    "-" if growth is None else f"{growth:.2f}",
                    "-" if over_reference is None else f"{over_reference:.2f}",
                    "-" if None in cpu else f"{fmt(min(cpu))}-{fmt(max(cpu))}",
                    "-" if cpu_growth is None else f"{cpu_growth:.2f}",
                    f"<= {FLAT}" if judged else "",
                    {True: "yes", False: "NO", None: ""}[entry["flat"]] if judged else "",
                )
            )
    return render(rows, left={0, 1, len(head) - 2, len(head) - 1})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log = sys.stderr
    started, started_at = time.monotonic(), dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-scale-"))
    measured: dict[str, dict[str, dict[int, Any]]] = {}
    fill_seconds: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
        grown = dockyards(args, tmp, stack)
        peers: list[Server] = []
        if not args.no_distribution:
            peers = [
                DistributionV3("distribution_v3", "Distribution v3", tmp / "distribution-v3"),
                Distribution("distribution", "Distribution 2.8", tmp / "distribution"),
            ]
        servers: list[Server] = [g.server for g in grown] + peers
        backend = {g.server.key: g.backend for g in grown} | {p.key: "filesystem" for p in peers}
        # One server at a time: the others would only share the two cores.
        for server in servers:
            stack.callback(server.stop)
            server.start()
            print(f"bench --scale: {server.title} {server.version} on {server.url}", file=log)
            try:
                mine = [g for g in grown if g.server is server]
                if mine:
                    result = grow_dockyard(mine[0], args, log)
                else:
                    result = grow_distribution(server, args, log)
                measured[server.key], fill_seconds[server.key] = result
            finally:
                server.stop()
    results = build(servers, measured, fill_seconds, args, started, started_at)
    results["backends"] = backend
    results["references"] = {
        g.reference.key: {"title": g.reference.title, "pid": g.reference.pid} for g in grown
    }
    from bench import plot

    results["plot"] = plot.write(results, args.plot)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"\ngrowth: {', '.join(f'{k} on {v}' for k, v in backend.items())}; "
        f"{results['machine']['nproc']} cores, {results['machine']['cpu_model']}; "
        f"{args.requests} requests a figure, medians; {results['duration_s']:.0f} s in all"
    )
    print(table(results))
    print(f"\nresults: {args.out}")
    print(f"plot: {results['plot']['path'] or results['plot']['note']}")
    return 0
