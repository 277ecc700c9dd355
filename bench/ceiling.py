"""`python -m bench.ceiling`: the blob transfers against this machine's own limit.

The push and pull benchmarks of `python -m bench`, run in rounds against three servers in turn
(A B C, B C A, C A B, ...): the bare sink (`bench.sink`: only the work no registry can skip),
Dockyard and CNCF Distribution. The sink's figure is what the clients,
the kernel and the disk leave for any server on this machine, so

* Dockyard's and Distribution's figures are also shown as a share of it, and
* the sink's figure over Distribution's is the highest ratio any server could reach here: a
  ratio target above it cannot be met on this machine, however the server is written.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.cli import blob_pool, chosen, ensure_alive, fmt, machine, render, run_all, summary
from bench.servers import Distribution, Dockyard, Server, Sink
from bench.suite import Config, Pull, PushChunked, PushConcurrent, PushMonolithic

BENCHMARKS = (PushMonolithic, PushChunked, PushConcurrent, Pull)
SIZES = (
    "rounds",
    "blob_mib",
    "chunk_mib",
    "pull_mib",
    "pull_repeats",
    "concurrent",
    "concurrent_mib",
)
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "ceiling.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ceiling",
        description="Blob pushes and pulls against the bare sink (this machine's limit), "
        "Dockyard and CNCF Distribution, in turn.",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated benchmark names (default all): "
        + ", ".join(b.name for b in BENCHMARKS),
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"JSON results file (default {DEFAULT_OUT})"
    )
    defaults = Config()
    for name in SIZES:
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=int,
            default=getattr(defaults, name),
            help=f"default {getattr(defaults, name)}",
        )
    return parser.parse_args(argv)


def build(
    servers: list[Server], benchmarks: list[Any], values: dict[str, dict[str, list[float]]]
) -> dict[str, Any]:
    sink, dockyard, distribution = (s.key for s in servers)
    out: dict[str, Any] = {}
    for bench in benchmarks:
        for metric in bench.metrics:
            per = {key: summary(values[metric.key][key]) for key in (sink, dockyard, distribution)}
            medians = {key: s["median"] for key, s in per.items()}

            def share(key: str, over: str, m: dict[str, float | None] = medians) -> float | None:
                a, b = m[key], m[over]
                return a / b if a is not None and b else None

            out[metric.key] = {
                "title": metric.title,
                "unit": metric.unit,
                **per,
                "dockyard_of_ceiling": share(dockyard, sink),
                "distribution_of_ceiling": share(distribution, sink),
                "ratio": share(dockyard, distribution),
                "highest_possible_ratio": share(sink, distribution),
                "target": metric.target or None,
            }
    return out


def table(results: dict[str, Any]) -> str:
    head = (
        "benchmark",
        "ceiling (sink)",
        "Dockyard",
        "of ceiling",
        "Distribution",
        "of ceiling",
        "D/Dist",
        "highest possible",
        "target",
    )
    rows = [head]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for e in results["benchmarks"].values():
        rows.append(
            (
                e["title"],
                fmt(e["ceiling"]["median"]),
                fmt(e["dockyard"]["median"]),
                pct(e["dockyard_of_ceiling"]),
                fmt(e["distribution"]["median"]),
                pct(e["distribution_of_ceiling"]),
                ratio(e["ratio"]),
                ratio(e["highest_possible_ratio"]),
                e["target"] or "",
            )
        )
    return render(rows, left={0, len(head) - 1})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = Config()
    for name in SIZES:
        setattr(config, name, getattr(args, name))
    classes = chosen(args.only, BENCHMARKS, "bench.ceiling")
    if not shutil.which("curl"):
        raise SystemExit("bench.ceiling: 'curl' not found (run `make bench`, which installs it)")
    log = sys.stderr
    started, started_at = time.monotonic(), dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    pool = blob_pool(config)
    benchmarks = [cls(config, pool) for cls in classes]
    tmp = Path(tempfile.mkdtemp(prefix="dockyard-ceiling-"))
    servers: list[Server] = [
        Sink("ceiling", "sink", tmp / "sink"),
        Dockyard("dockyard", "Dockyard", tmp / "dockyard"),
        Distribution("distribution", "Distribution", tmp / "distribution"),
    ]
    try:
        for server in servers:
            server.start()
        ensure_alive(servers)
        values, errors = run_all(config, servers, benchmarks, log)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results = {
        "schema": 1,
        "started_at": started_at,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": machine(),
        "servers": {s.key: {"title": s.title, "version": s.version} for s in servers},
        "config": {name: getattr(config, name) for name in SIZES},
        "benchmarks": build(servers, benchmarks, values),
        "errors": errors,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    print(
        f"\nsink vs Dockyard {servers[1].version} vs Distribution {servers[2].version}; "
        f"{m['nproc']} cores, {m['cpu_model']}; {config.rounds} rounds in turn, medians; "
        f"{results['duration_s']:.0f} s in all"
    )
    print(table(results))
    print(f"\nresults: {args.out}")
    if errors:
        print(f"bench.ceiling: errors: {json.dumps(errors, indent=2)}", file=log)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
