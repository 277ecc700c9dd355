"""`python -m bench.scaleout --distribution`: Dockyard on S3 + PostgreSQL against CNCF
Distribution v3.1.1 and 2.8.2 on the same S3 server (SeaweedFS), in one run.

Each server keeps its blobs in a bucket of its own on one SeaweedFS; Dockyard's metadata is in
PostgreSQL (both started here as the tests start them: PostgreSQL with fsync off). Every server
has a twin on the same bucket (and, for Dockyard, the same database) with blob redirects off,
so a pull is timed both ways: redirected to a presigned S3 URL (curl follows the 307, as a
client does; both Distributions redirect by default) and streamed through the registry.

Benchmarks (rounds A B C, B C A, ... as `python -m bench` runs them; the table gives Dockyard's
ratio to each Distribution and to the faster one):

* blob push, monolithic (POST, one curl PUT of the whole blob) and chunked (16 MiB PATCHes);
* blob pull, redirected and through the registry (curl into /dev/null);
* tag list of one repository with 10,000 tags: full and one page of 100;
* catalog of 1,000 repositories: full (`n=1000`) and paged by 100.

Tags and repositories are filled over HTTP on every server alike (manifest PUTs of one small
image, blobs mounted into each new repository, `--setup-workers` at once): Distribution keeps
them as objects of its storage driver, which only its API can write.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from bench import ops, rawhttp
from bench.cli import build_results, chosen, machine, run_all, table
from bench.ops import BenchError, Client
from bench.payload import MiB, Pool
from bench.servers import Distribution, DistributionV3, Dockyard, PeakSampler, Server
from bench.suite import (
    PEAK_MEMORY,
    PEAK_PSS,
    PEAK_RSS,
    Benchmark,
    Config,
    Listings,
    Metric,
    PushChunked,
    PushMonolithic,
    at_least,
    at_most,
    mibps,
)

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.postgres import PostgresCluster  # noqa: E402 - the tests' peers reused
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedS3  # noqa: E402

DEFAULT_OUT = ROOT / "bench" / "results" / "sames3.json"
PUSH_TARGET = "ratio >= 1.0"
LISTING_TARGET = "ratio <= 0.05"

# Upload purging off: 2.8.2's purger (its walk of `_uploads`, at a random moment in the first
# hour) died of a Go panic on SeaweedFS's listing in the run of 2026-12-07, mid-benchmark,
# which ended the run. Nothing here leaves uploads for it to purge.
S3_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  s3:
    region: us-east-1
    regionendpoint: {endpoint}
    forcepathstyle: true
    secure: false
    v4auth: true
    bucket: {bucket}
    accesskey: {access_key}
    secretkey: {secret_key}
    rootdirectory: /registry
  delete:
    enabled: true
  redirect:
    disable: {no_redirect}
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
"""


@dataclass
class OnS3:
    """Where a Distribution keeps its blobs, and whether it redirects blob GETs there."""

    endpoint: str = ""
    bucket: str = ""
    redirect: bool = True

    def config(self, port: int) -> str:
        # 2.8.2 has no `forcepathstyle` key (it ignores it): with `regionendpoint` set it
        # addresses buckets by path anyway, as SeaweedFS needs.
        return S3_CONFIG.format(
            endpoint=self.endpoint,
            bucket=self.bucket,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            no_redirect="false" if self.redirect else "true",
            port=port,
        )


def without_ca_bundle(env: dict[str, str]) -> dict[str, str]:
    """The environment minus AWS_CA_BUNDLE: Debian's 2.8.2 builds its S3 client on an HTTP
    transport the AWS SDK cannot add a CA bundle to, and refuses to start when one is named.
    SeaweedFS is plain HTTP on loopback: no certificate is ever checked."""
    return {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}


@dataclass
class S3Distribution(Distribution):
    """Distribution 2.8.2 with the `s3` storage driver; otherwise as `bench.servers` runs it."""

    s3: OnS3 | None = None
    # the twin on the same storage that streams blobs instead of redirecting
    through: Server | None = None

    def command(self) -> list[str]:
        assert self.s3 is not None
        config = self.workdir / "config.yml"
        config.write_text(self.s3.config(self.port))
        return [self.binary(), "serve", str(config)]

    def env(self) -> dict[str, str]:
        return without_ca_bundle(super().env())


@dataclass
class S3DistributionV3(DistributionV3):
    """Distribution v3.1.1 with the same `s3` configuration."""

    s3: OnS3 | None = None
    through: Server | None = None

    def command(self) -> list[str]:
        assert self.s3 is not None
        config = self.workdir / "config.yml"
        config.write_text(self.s3.config(self.port))
        return [self.binary(), "serve", str(config)]

    def env(self) -> dict[str, str]:
        return without_ca_bundle(super().env())


@dataclass
class S3Dockyard(Dockyard):
    """`dockyard serve` with blobs in S3 and metadata in PostgreSQL (environment variables)."""

    through: Server | None = None


def through_url(server: Server) -> str:
    twin = getattr(server, "through", None)
    if twin is None:
        raise BenchError(f"{server.title} has no twin that streams blobs")
    return str(twin.url)


def curl_get(url: str, expected_size: int, follow: bool) -> tuple[float, int, str]:
    """GET `url` with curl into /dev/null (following redirects with `follow`): wall seconds,
    how many redirects were followed and the scheme, host and port the bytes came from."""
    started = time.perf_counter()
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--noproxy",
            "*",
            *(["-L"] if follow else []),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download} %{num_redirects} %{url_effective}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - started
    out = result.stdout.split()
    if result.returncode != 0 or len(out) != 4 or out[0] != "200" or int(out[1]) != expected_size:
        raise BenchError(
            f"curl {url}: exit {result.returncode}, {result.stdout!r} "
            f"{result.stderr.strip()!r}; expected 200 and {expected_size} bytes"
        )
    origin = httpx.URL(out[3])
    return elapsed, int(out[2]), f"{origin.scheme}://{origin.host}:{origin.port}"


PAGE_SAMPLES = 5  # pages of the tag list timed a listing: the first and from spread `last`s


class S3Listings(Listings):
    """The suite's tag list and catalog, judged by issue 21's S3 target, except that the tag
    list's page is timed on PAGE_SAMPLES pages (the first, and after `last=` tags spread over
    the list) instead of a walk of them all: on S3 Distribution v3 reads every tag for each
    page (3-5 s a page at 10,000 tags on the shared VM), so one walk of 100 pages took longer
    than the rest of the run."""

    metrics = (
        Metric(
            "tags_list_full_ms",
            "tag list, full (ms)",
            "ms",
            "lower",
            LISTING_TARGET,
            at_most(0.05),
        ),
        Metric(
            "tags_list_page_ms",
            "tag list, one page of 100 (ms)",
            "ms",
            "lower",
            LISTING_TARGET,
            at_most(0.05),
        ),
        Metric(
            "catalog_full_ms", "catalog, full (ms)", "ms", "lower", LISTING_TARGET, at_most(0.05)
        ),
        Metric(
            "catalog_paged_ms",
            "catalog, paged (ms)",
            "ms",
            "lower",
            LISTING_TARGET,
            at_most(0.05),
        ),
    )

    def _time_pages(self, conn: rawhttp.Listing, path: str) -> float:
        """Median milliseconds of one page of `page` tags over the sampled starts; each answer
        must hold the tags that follow its `last` (Distribution 2.8 ignores `n` and `last`
        on tag lists and answers them all, which also holds them)."""
        cfg = self.config
        names = [f"tag-{i:05d}" for i in range(cfg.tags)]  # as set up, in order
        starts = sorted({(k * cfg.tags) // PAGE_SAMPLES for k in range(PAGE_SAMPLES)})
        times = []
        for start in starts:
            params = {"n": str(cfg.page)}
            if start:
                params["last"] = names[start - 1]
            target = f"{path}?{urlencode(params)}"
            began = time.perf_counter()
            status, _, body = conn.get(target)
            times.append(time.perf_counter() - began)
            if status != 200:
                raise BenchError(f"GET {target} answered {status}")
            found = set(json.loads(body).get("tags") or [])
            wanted = set(names[start : start + cfg.page])
            if not wanted <= found:
                raise BenchError(f"{path} {params}: {len(wanted - found)} tags missing")
        return statistics.median(times) * 1000

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        cfg = self.config
        tags_path = f"/v2/{self.tags_repo}/tags/list"
        out: dict[str, float] = {}
        with rawhttp.Listing(server.url) as conn:  # as the suite's listings (`Listings.run`)
            conn.pages("/v2/", 0)
            out["tags_list_full_ms"], _ = self._time_listing(conn, tags_path, {}, "tags", cfg.tags)
            out["tags_list_page_ms"] = statistics.median(
                self._time_pages(conn, tags_path) for _ in range(cfg.list_iterations)
            )
            out["catalog_full_ms"], _ = self._time_listing(
                conn, "/v2/_catalog", {"n": str(cfg.repos)}, "repositories", cfg.repos
            )
            out["catalog_paged_ms"], pages = self._time_listing(
                conn, "/v2/_catalog", {"n": str(cfg.page)}, "repositories", cfg.repos
            )
            self.state[server.key]["catalog_pages"] = pages
            self.state[server.key]["tag_pages"] = PAGE_SAMPLES
        return out


class S3PushMonolithic(PushMonolithic):
    metrics = (
        Metric(
            "blob_push_monolithic_mibps",
            "blob push, monolithic (MiB/s)",
            "MiB/s",
            "higher",
            PUSH_TARGET,
            at_least(1.0),
        ),
    )


class S3PushChunked(PushChunked):
    metrics = (
        Metric(
            "blob_push_chunked_mibps",
            "blob push, chunked (MiB/s)",
            "MiB/s",
            "higher",
            PUSH_TARGET,
            at_least(1.0),
        ),
    )


class PullRedirected(Benchmark):
    """GET of one blob, the redirect followed to the object store: `pull_repeats` downloads a
    round, their median. Set-up checks the registry did redirect."""

    name = "blob_pull_redirected"
    follow = True
    metrics = (
        Metric(
            "blob_pull_redirected_mibps",
            "blob pull, redirected to S3 (MiB/s)",
            "MiB/s",
            "higher",
            PUSH_TARGET,
            at_least(1.0),
        ),
    )

    def base(self, server: Server) -> str:
        return str(server.url)

    def setup(self, server: Server) -> None:
        super().setup(server)
        blob = self.pool.blob(self.config.pull_mib * MiB)
        with Client(server.url) as client:
            client.push_monolithic("bench/pull", blob)
        self.state[server.key]["blob"] = blob
        _, redirects, origin = curl_get(self._url(server), blob.size, follow=True)
        if (redirects > 0) != self.follow:
            raise BenchError(f"{server.title}: {redirects} redirects on {self._url(server)}")
        self.state[server.key]["bytes_from"] = origin

    def info(self) -> dict[str, Any]:
        return {"bytes_from": {key: s.get("bytes_from") for key, s in self.state.items()}}

    def _url(self, server: Server) -> str:
        blob = self.state[server.key]["blob"]
        return f"{self.base(server)}/v2/bench/pull/blobs/{blob.digest}"

    def run(self, server: Server, round_no: int) -> dict[str, float]:
        blob = self.state[server.key]["blob"]
        seconds = statistics.median(
            curl_get(self._url(server), blob.size, follow=True)[0]
            for _ in range(self.config.pull_repeats)
        )
        return {self.metrics[0].key: mibps(blob.size, seconds)}


class PullThrough(PullRedirected):
    """The same GET on the server's twin with redirects off: the bytes pass the registry."""

    name = "blob_pull_through"
    follow = False
    metrics = (
        Metric(
            "blob_pull_through_mibps",
            "blob pull, through the registry (MiB/s)",
            "MiB/s",
            "higher",
        ),
    )

    def base(self, server: Server) -> str:
        return through_url(server)


# The listings first, on empty registries: a blob pushed into a repository puts it in the
# catalog of Dockyard and of Distribution 2.8, and the catalog must hold exactly `repos`.
BENCHMARKS: tuple[type[Benchmark], ...] = (
    S3Listings,
    S3PushMonolithic,
    S3PushChunked,
    PullRedirected,
    PullThrough,
)

DEFAULTS = dict(
    rounds=3,
    blob_mib=256,
    pull_mib=256,
    pull_repeats=3,
    chunk_mib=16,
    tags=10_000,
    repos=1_000,
    page=100,
    list_iterations=1,
    setup_workers=8,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scaleout --distribution",
        description="Dockyard (S3 + PostgreSQL) against Distribution v3.1.1 and 2.8.2 on the "
        "same SeaweedFS: pushes, pulls (redirected and streamed), tag list and catalog.",
    )
    parser.add_argument("--only", default="", help="comma-separated benchmark names")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="TREE",
        help="also run the Dockyard of another checkout (e.g. `git archive main | tar -x -C "
        "TREE`) on a bucket and database of its own, in the same rotation: before/after "
        "figures of one run",
    )
    known = {f.name: f for f in fields(Config)}
    for name, default in DEFAULTS.items():
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=type(default),
            default=default,
            help=f"default {default}",
        )
        assert name in known
    return parser.parse_args(argv)


BASELINE = "dockyard_baseline"


def s3_dockyard(
    tmp: Path, s3: SeaweedS3, pg: PostgresCluster, key: str, title: str, tree: Path | None = None
) -> tuple[S3Dockyard, Server]:
    """A Dockyard on a bucket and database of its own (its code from `tree`'s `src` when
    given), and its twin with redirects off on the same storage."""
    dockyard_env = {
        "DOCKYARD_STORAGE": f"s3://{s3.create_bucket()}/registry",
        "DOCKYARD_METADATA": pg.create_database(),
        "DOCKYARD_S3_ENDPOINT": s3.endpoint,
        "DOCKYARD_S3_PATH_STYLE": "true",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }
    if tree is not None:
        dockyard_env["PYTHONPATH"] = f"{tree.resolve() / 'src'}"
    twin = Dockyard(
        f"{key}_through",
        f"{title}, redirects off",
        tmp / f"{key}-through",
        extra_env={**dockyard_env, "DOCKYARD_S3_REDIRECT_SECONDS": "0"},
    )
    server = S3Dockyard(key, title, tmp / key, extra_env=dockyard_env, through=twin)
    return server, twin


def make_servers(
    tmp: Path, s3: SeaweedS3, pg: PostgresCluster, baseline: Path | None = None
) -> tuple[list[Server], list[Server]]:
    """The servers in the rotation (three, four with a baseline), and their twins that stream
    blobs (same storage)."""
    dockyard, dockyard_through = s3_dockyard(tmp, s3, pg, "dockyard", "Dockyard S3+PostgreSQL")
    servers: list[Server] = [dockyard]
    twins: list[Server] = [dockyard_through]
    if baseline is not None:
        old, old_through = s3_dockyard(
            tmp, s3, pg, BASELINE, f"Dockyard S3+PostgreSQL, baseline {baseline}", baseline
        )
        servers.append(old)
        twins.append(old_through)
    for key, title, cls in (
        ("distribution_v3", "Distribution v3 S3", S3DistributionV3),
        ("distribution", "Distribution S3", S3Distribution),
    ):
        on = OnS3(s3.endpoint, s3.create_bucket())
        twin = cls(
            f"{key}_through",
            f"{title}, redirects off",
            tmp / f"{key}-through",
            s3=OnS3(on.endpoint, on.bucket, redirect=False),
        )
        servers.append(cls(key, title, tmp / key, s3=on, through=twin))
        twins.append(twin)
    return servers, twins


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = Config()
    for name in DEFAULTS:
        setattr(config, name, getattr(args, name))
    if config.rounds < 1:
        raise SystemExit("bench.scaleout: --rounds must be at least 1")
    benchmarks = [
        cls(config, Pool(min(max(config.blob_mib, config.pull_mib), 512) * MiB))
        for cls in chosen(args.only, BENCHMARKS, "bench.scaleout")
    ]
    log = sys.stderr
    started, started_at = time.monotonic(), dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-sames3-"))
    s3 = SeaweedS3(tmp / "s3").start()
    pg = PostgresCluster().start()
    servers: list[Server] = []
    twins: list[Server] = []
    try:
        servers, twins = make_servers(tmp, s3, pg, args.baseline)
        for server in [*servers, *twins]:
            server.start()
            server.command_line = " ".join(server.command())
            print(f"bench: {server.title} {server.version} on {server.url}", file=log)
        with PeakSampler(servers) as sampler:
            values, errors = run_all(config, servers, benchmarks, log, sampler)
        results = build_results(
            config,
            servers,
            benchmarks,
            values,
            errors,
            sampler.peak,
            sampler.peak_pss,
            started,
            started_at,
        )
        # Issue 21's memory target is judged by `python -m bench` on the filesystem: here the
        # peaks are kept for reference, out of the table.
        peaks: dict[str, dict[str, float]] = {}
        for row in (PEAK_RSS.key, PEAK_PSS.key, PEAK_MEMORY.key):
            entry = results["benchmarks"].pop(row)
            peaks[row] = {s.key: entry[s.key]["median"] for s in servers}
        results["info"]["peak_memory_mib"] = peaks
        results["info"]["setup_writes_sent_again_after_503"] = {
            s.key: ops.RETRIED[s.url] for s in servers
        }
        results["twins"] = {
            t.key: {"title": t.title, "url": t.url, "pid": t.pid, "command": t.command_line}
            for t in twins
        }
        results["storage"] = {
            "s3": "SeaweedFS (weed mini), a bucket per server and its twin",
            "s3_endpoint": s3.endpoint,
            "metadata": "Dockyard: PostgreSQL (fsync off); Distribution: its S3 objects",
            "fill": "over HTTP on every server (manifest PUTs, blob mounts)",
        }
    finally:
        for server in [*servers, *twins]:
            server.stop()
        pg.stop()
        s3.stop()
        if args.keep:
            print(f"bench: data kept in {tmp}", file=log)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    m = machine()
    print(
        f"\nDockyard on S3 (SeaweedFS) + PostgreSQL vs Distribution v3 and 2.8.2 on the same S3; "
        f"{m['nproc']} cores; {config.rounds} rounds in turn, medians; "
        f"{config.tags} tags, {config.repos} repositories, {config.blob_mib} MiB pushes, "
        f"{config.pull_mib} MiB pulls; {results['duration_s']:.0f} s in all"
    )
    print(table(results))
    if args.baseline is not None:
        print(f"\nthis tree against the baseline ({args.baseline}), same run:")
        for entry in results["benchmarks"].values():
            new, old = entry["dockyard"]["median"], entry[BASELINE]["median"]
            if new is not None and old is not None and old:
                print(f"  {entry['title']}: {old:.4g} -> {new:.4g} ({new / old:.2f})")
    again = results["info"]["setup_writes_sent_again_after_503"]
    if any(again.values()):
        print(
            "set-up writes answered 503 (Retry-After) and sent again: "
            + ", ".join(f"{results['servers'][k]['title']} {n}" for k, n in again.items())
        )
    print(f"\nresults: {args.out}")
    if errors:
        print(f"bench: errors: {json.dumps(errors, indent=2)}", file=log)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
