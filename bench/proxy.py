"""`python -m bench.proxy`: the pull-through cache, measured against what it stands in for.

* warm: pulling an image the cache already holds, against pulling the same image from an
  ordinary Dockyard repository (target: within 10%);
* cold: pulling through an empty cache, against pulling straight from the upstream (CNCF
  Distribution) (target: within 15%), and against Distribution's own pull-through cache
  (`proxy.remoteurl`) pulling through an empty cache of the same upstream: the peer doing the
  same work.

A pull is what a client does: GET the manifest, then GET every blob, bytes read and discarded
(several blobs at once, as clients do). Rounds alternate A B A B; each cold round starts a fresh
cache so nothing is cached before it.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.servers import Distribution, Dockyard, Server, cpu_seconds, tree_pids

MiB = 1024 * 1024
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def make_image(layers: int, layer_mib: int) -> tuple[bytes, list[bytes]]:
    blobs = [os.urandom(layer_mib * MiB) for _ in range(layers)]
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": "sha256:" + hashlib.sha256(b).hexdigest(),
                    "size": len(b),
                }
                for b in blobs
            ],
        }
    ).encode()
    return manifest, [config, *blobs]


def push(
    url: str, repo: str, manifest: bytes, blobs: list[bytes], headers: dict[str, str] | None = None
) -> None:
    with httpx.Client(base_url=url, timeout=300, headers=headers) as client:
        for blob in blobs:
            location = client.post(f"/v2/{repo}/blobs/uploads/").headers["Location"]
            digest = "sha256:" + hashlib.sha256(blob).hexdigest()
            sep = "&" if "?" in location else "?"
            client.put(f"{location}{sep}digest={digest}", content=blob).raise_for_status()
        client.put(
            f"/v2/{repo}/manifests/v1", content=manifest, headers={"Content-Type": MANIFEST}
        ).raise_for_status()


def pull(url: str, repo: str, parallel: int = 4) -> float:
    """Seconds for a whole pull; bytes are counted, not kept."""
    started = time.perf_counter()
    with httpx.Client(base_url=url, timeout=300) as client:
        response = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST})
        response.raise_for_status()
        doc = response.json()
        digests = [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]

        def fetch(digest: str) -> int:
            total = 0
            with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as blob:
                blob.raise_for_status()
                for chunk in blob.iter_raw(MiB):
                    total += len(chunk)
            return total

        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            list(pool.map(fetch, digests))
    return time.perf_counter() - started


def cold_pull(server: Server, repo: str, cpu: list[float]) -> float:
    """A pull through a fresh server; its CPU seconds for it (every process of its tree, the
    upstream excluded) are appended to `cpu`: a cost that other load barely moves."""
    before = cpu_seconds(tree_pids(server.pid))
    seconds = pull(server.url, repo)
    cpu.append(cpu_seconds(tree_pids(server.pid)) - before)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--layer-mib", type=int, default=64)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "proxy.json"
    )
    args = parser.parse_args(argv)
    manifest, blobs = make_image(args.layers, args.layer_mib)
    size_mib = sum(len(b) for b in blobs) / MiB
    work = Path(tempfile.mkdtemp(prefix="dockyard-bench-proxy-"))
    upstream = Distribution("distribution", "CNCF Distribution", work / "upstream").start()
    plain = Dockyard("dockyard", "Dockyard", work / "plain").start()
    warm = Dockyard(
        "cache", "Dockyard cache", work / "warm", extra_args=("--proxy", f"up={upstream.url}")
    ).start()
    servers = [upstream, plain, warm]
    results: dict[str, list[float]] = {
        "warm cache": [],
        "plain repository": [],
        "cold cache": [],
        "upstream direct": [],
        "Distribution cold cache": [],
    }
    cpu: dict[str, list[float]] = {"cold cache": [], "Distribution cold cache": []}
    try:
        push(upstream.url, "lib/app", manifest, blobs)
        push(plain.url, "lib/app", manifest, blobs)
        pull(warm.url, "up/lib/app")  # fills the warm cache
        for round_number in range(args.rounds):
            results["warm cache"].append(pull(warm.url, "up/lib/app"))
            results["plain repository"].append(pull(plain.url, "lib/app"))
            cold = Dockyard(
                "cold",
                "Dockyard cold cache",
                work / f"cold{round_number}",
                extra_args=("--proxy", f"up={upstream.url}"),
            ).start()
            servers.append(cold)
            results["cold cache"].append(cold_pull(cold, "up/lib/app", cpu["cold cache"]))
            cold.stop()
            results["upstream direct"].append(pull(upstream.url, "lib/app"))
            peer = Distribution(
                "peer",
                "Distribution cold cache",
                work / f"peer{round_number}",
                proxy_url=upstream.url,
            ).start()
            servers.append(peer)
            results["Distribution cold cache"].append(
                cold_pull(peer, "lib/app", cpu["Distribution cold cache"])
            )
            peer.stop()
    finally:
        for server in servers:
            server.stop()
    medians = {name: statistics.median(times) for name, times in results.items()}
    warm_ratio = medians["plain repository"] / medians["warm cache"]
    cold_ratio = medians["upstream direct"] / medians["cold cache"]
    peer_ratio = medians["Distribution cold cache"] / medians["cold cache"]
    print(f"image: {args.layers} layers, {size_mib:.0f} MiB; {args.rounds} rounds, medians")
    for name, seconds in medians.items():
        print(f"  {name:<18} {seconds * 1000:8.0f} ms  {size_mib / seconds:8.0f} MiB/s")
    print(
        f"warm cache vs plain repository: throughput ratio {warm_ratio:.2f} "
        f"(target >= 0.90: {'met' if warm_ratio >= 0.9 else 'NOT met'})"
    )
    print(
        f"cold cache vs upstream direct:  throughput ratio {cold_ratio:.2f} "
        f"(target >= 0.85: {'met' if cold_ratio >= 0.85 else 'NOT met'})"
    )
    print(f"cold cache vs Distribution's own cold cache: throughput ratio {peer_ratio:.2f}")
    cpu_medians = {name: statistics.median(seconds) for name, seconds in cpu.items()}
    print(
        "server CPU seconds per cold pull: "
        + ", ".join(f"{name} {seconds:.2f}" for name, seconds in cpu_medians.items())
    )
    report: dict[str, Any] = {
        "image_mib": size_mib,
        "rounds": results,
        "medians": medians,
        "warm_ratio": warm_ratio,
        "cold_ratio": cold_ratio,
        "cold_vs_distribution_cache": peer_ratio,
        "cold_pull_cpu_seconds": cpu,
        "nproc": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
