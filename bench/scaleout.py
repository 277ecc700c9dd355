"""`python -m bench.scaleout`: push (monolithic, and chunked in 16 MiB PATCHes) and pull
throughput on S3 + PostgreSQL (blob downloads redirected to the object store, and streamed
through the registry) next to filesystem + SQLite, in one run, rounds alternating. The S3
server is SeaweedFS (from PyPI) and PostgreSQL is Debian's, both started here on loopback and
stopped at the end.

`python -m bench.scaleout --distribution` runs `bench.sames3` instead: Dockyard on S3 +
PostgreSQL against both CNCF Distributions on the same SeaweedFS (see its `--help`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.servers import Dockyard

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres import PostgresCluster  # noqa: E402 - test helpers reused
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedS3  # noqa: E402

MiB = 1024 * 1024


def push(url: str, repo: str, blob: bytes, digest: str) -> float:
    with httpx.Client(base_url=url, timeout=600) as client:
        started = time.perf_counter()
        location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        sep = "&" if "?" in location else "?"

        def body():
            for i in range(0, len(blob), MiB):
                yield blob[i : i + MiB]

        client.put(f"{location}{sep}digest={digest}", content=body()).raise_for_status()
        return time.perf_counter() - started


def push_chunked(
    urls: list[str], repo: str, blob: bytes, digest: str, chunk: int = 16 * MiB
) -> float:
    """One PATCH per `chunk` bytes with Content-Range, then the closing PUT; with several
    replicas the requests take turns among them, so no process sees every chunk and the
    digest is checked by reading the upload back instead of with a running hash."""
    clients = [httpx.Client(base_url=url, timeout=600) for url in urls]
    try:
        started = time.perf_counter()
        location = clients[0].post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
        for number, start in enumerate(range(0, len(blob), chunk)):
            client = clients[(number + 1) % len(clients)]
            piece = blob[start : start + chunk]
            response = client.patch(
                location,
                content=piece,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{start}-{start + len(piece) - 1}",
                },
            )
            response.raise_for_status()
            location = response.headers["Location"]
        sep = "&" if "?" in location else "?"
        clients[0].put(f"{location}{sep}digest={digest}").raise_for_status()
        return time.perf_counter() - started
    finally:
        for client in clients:
            client.close()


def pull(url: str, repo: str, digest: str, size: int) -> float:
    with httpx.Client(base_url=url, timeout=600, follow_redirects=True) as client:
        started = time.perf_counter()
        total = 0
        with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as response:
            response.raise_for_status()
            for chunk in response.iter_raw(MiB):
                total += len(chunk)
        assert total == size
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if "--distribution" in given:
        from bench import sames3

        return sames3.main([a for a in given if a != "--distribution"])
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "scaleout.json"
    )
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-scaleout-"))
    s3 = SeaweedS3(work / "s3").start()
    pg = PostgresCluster().start()
    blobs = [os.urandom(args.size_mib * MiB) for _ in range(args.rounds)]
    digests = ["sha256:" + hashlib.sha256(b).hexdigest() for b in blobs]
    servers: dict[str, Dockyard] = {}
    replica: Dockyard | None = None
    try:
        shared = {
            "DOCKYARD_S3_ENDPOINT": s3.endpoint,
            "DOCKYARD_S3_PATH_STYLE": "true",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }
        servers["filesystem + SQLite"] = Dockyard("fs", "fs", work / "fs")
        for name, redirect in (
            ("S3 + PostgreSQL, redirect", "600"),
            ("S3 + PostgreSQL, streamed", "0"),
        ):
            servers[name] = Dockyard(
                "s3",
                name,
                work / name.replace(" ", "_"),
                extra_env={
                    **shared,
                    "DOCKYARD_STORAGE": f"s3://{s3.create_bucket()}/r",
                    "DOCKYARD_METADATA": pg.create_database(),
                    "DOCKYARD_S3_REDIRECT_SECONDS": redirect,
                },
            )
        # A second replica of the streamed setup (same bucket and database), for chunked
        # pushes whose chunks alternate between the two.
        twin = servers["S3 + PostgreSQL, streamed"]
        replica = Dockyard("s3b", "second replica", work / "replica", extra_env=twin.extra_env)
        for server in [*servers.values(), replica]:
            server.start()
        results: dict[str, dict[str, list[float]]] = {
            n: {"push": [], "push_chunked": [], "pull": []} for n in servers
        }
        alternating: list[float] = []
        for number in range(args.rounds):
            for name, server in servers.items():
                repo = f"bench/scaleout{number}"
                results[name]["push"].append(
                    args.size_mib / push(server.url, repo, blobs[number], digests[number])
                )
                results[name]["pull"].append(
                    args.size_mib / pull(server.url, repo, digests[number], len(blobs[number]))
                )
                # The same bytes again in another repository: a new upload, chunked.
                results[name]["push_chunked"].append(
                    args.size_mib
                    / push_chunked(
                        [server.url],
                        f"{repo}-chunked",
                        blobs[number][::-1],
                        "sha256:" + hashlib.sha256(blobs[number][::-1]).hexdigest(),
                    )
                )
                if server is twin:
                    other = bytes(reversed(blobs[number][: len(blobs[number]) // 2])) * 2
                    alternating.append(
                        args.size_mib
                        / push_chunked(
                            [twin.url, replica.url],
                            f"{repo}-alternating",
                            other,
                            "sha256:" + hashlib.sha256(other).hexdigest(),
                        )
                    )
    finally:
        for server in [*servers.values(), *([replica] if replica else [])]:
            server.stop()
        pg.stop()
        s3.stop()
    base = results["filesystem + SQLite"]
    print(
        f"{args.size_mib} MiB blobs, {args.rounds} rounds, medians (MiB/s; ratio to "
        "filesystem + SQLite)"
    )
    report = {}
    for name, values in results.items():
        medians = {kind: statistics.median(v) for kind, v in values.items()}
        report[name] = {f"{kind}_mibps": m for kind, m in medians.items()}
        shown = "   ".join(
            f"{kind.replace('_', ' ')} {m:7.0f} ({m / statistics.median(base[kind]):.2f})"
            for kind, m in medians.items()
        )
        print(f"  {name:<28} {shown}")
    twin_chunked = statistics.median(results["S3 + PostgreSQL, streamed"]["push_chunked"])
    print(
        f"  chunked push alternating between two replicas (digest read back at the end): "
        f"{statistics.median(alternating):.0f} MiB/s ("
        f"{statistics.median(alternating) / twin_chunked:.2f} of one replica's running hash)"
    )
    report["chunked push, two replicas alternating"] = {
        "push_chunked_mibps": statistics.median(alternating)
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "size_mib": args.size_mib,
                "rounds": results,
                "medians": report,
                "nproc": os.cpu_count(),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
