"""`python -m bench`: start both servers, run each benchmark in rounds A B, B A, A B ..., print
and save the results."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from bench.ops import BenchError
from bench.payload import MiB, Pool
from bench.servers import Distribution, Dockyard, PeakSampler, Server
from bench.suite import (
    BENCHMARKS,
    PEAK_PSS,
    PEAK_RSS,
    QUICK,
    Benchmark,
    Config,
    Metric,
    all_metrics,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Dockyard against CNCF Distribution on loopback, alternately (A B, B A, ...): "
        "medians per server and the ratio Dockyard/Distribution.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes and shorter wrk runs: a smoke run of about a minute",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"JSON results file (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated benchmark names to run (default all): "
        + ", ".join(b.name for b in BENCHMARKS),
    )
    parser.add_argument(
        "--dockyard-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `dockyard serve` (repeatable)",
    )
    parser.add_argument(
        "--dockyard-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment variable for `dockyard serve` (repeatable)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the servers' temporary data folders (their path is printed)",
    )
    for f in fields(Config):
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=float if f.type in ("float", float) else int,
            default=None,
            help=f"default {f.default if f.name != 'wrk_threads' else 'nproc'}"
            + (f", --quick {QUICK[f.name]}" if f.name in QUICK else ""),
        )
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    config = Config()
    if args.quick:
        for name, value in QUICK.items():
            setattr(config, name, value)
    for f in fields(Config):
        value = getattr(args, f.name)
        if value is not None:
            setattr(config, f.name, value)
    if config.rounds < 1:
        raise SystemExit("bench: --rounds must be at least 1")
    return config


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    with contextlib.suppress(OSError, IndexError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"median": None, "min": None, "max": None, "values": []}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": values,
    }


def run_all(
    config: Config,
    servers: list[Server],
    benchmarks: list[Benchmark],
    log: Any,
    sampler: PeakSampler | None = None,
) -> tuple[dict[str, dict[str, list[float]]], dict[str, dict[str, str]]]:
    """Each benchmark: set up on every server, then rounds in turn: A B, B A, A B ... (with three
    servers A B C, B C A, C A B ...), so no server always runs just after another's writes (this
    VM's disk slows down after a few GB written). Values and errors."""
    values: dict[str, dict[str, list[float]]] = {
        m.key: {s.key: [] for s in servers} for b in benchmarks for m in b.metrics
    }
    errors: dict[str, dict[str, str]] = {}
    for bench in benchmarks:
        if sampler is not None:
            sampler.phase = bench.name
        failed: set[str] = set()
        try:
            for server in servers:
                started = time.perf_counter()
                try:
                    bench.setup(server)
                except Exception as exc:
                    failed.add(server.key)
                    errors.setdefault(bench.name, {})[server.key] = f"setup: {exc}"
                    print(f"  {bench.name} setup on {server.title} FAILED: {exc}", file=log)
                    traceback.print_exc(file=log)
                else:
                    print(
                        f"  {bench.name}: set up on {server.title} in "
                        f"{time.perf_counter() - started:.1f}s",
                        file=log,
                    )
                ensure_alive(servers)
            _rounds(config, servers, bench, failed, values, errors, log)
        finally:
            bench.teardown()
    return values, errors


def _rounds(
    config: Config,
    servers: list[Server],
    bench: Benchmark,
    failed: set[str],
    values: dict[str, dict[str, list[float]]],
    errors: dict[str, dict[str, str]],
    log: Any,
) -> None:
    """The timed rounds of one benchmark, its values and errors recorded as they come."""
    for round_no in range(1, config.rounds + 1):
        turn = (round_no - 1) % len(servers)
        for server in servers[turn:] + servers[:turn]:
            if server.key in failed:
                continue
            try:
                result = bench.run(server, round_no)
            except Exception as exc:
                failed.add(server.key)
                errors.setdefault(bench.name, {})[server.key] = f"round {round_no}: {exc}"
                print(f"  {bench.name} round {round_no} on {server.title} FAILED: {exc}", file=log)
                traceback.print_exc(file=log)
                ensure_alive(servers)
                continue
            for key, value in result.items():
                values[key][server.key].append(value)
            shown = ", ".join(f"{k}={v:.4g}" for k, v in result.items())
            print(f"  {bench.name} round {round_no} {server.title}: {shown}", file=log)
            ensure_alive(servers)


def ensure_alive(servers: list[Server]) -> None:
    for server in servers:
        if not server.alive():
            raise BenchError(f"{server.title} died:\n{server.log_tail()}")


def build_results(
    config: Config,
    servers: list[Server],
    benchmarks: list[Benchmark],
    values: dict[str, dict[str, list[float]]],
    errors: dict[str, dict[str, str]],
    peak: dict[str, int],
    peak_pss: dict[str, int],
    started: float,
    started_at: str,
) -> dict[str, Any]:
    dockyard, distribution = servers
    metrics = [m for b in benchmarks for m in b.metrics] + [PEAK_RSS, PEAK_PSS]
    values = {
        **values,
        PEAK_RSS.key: {s.key: [peak[s.key] / MiB] for s in servers},
        PEAK_PSS.key: {s.key: [peak_pss[s.key] / MiB] for s in servers},
    }
    out: dict[str, Any] = {}
    for metric in metrics:
        a = summary(values[metric.key][dockyard.key])
        b = summary(values[metric.key][distribution.key])
        ratio = a["median"] / b["median"] if a["median"] is not None and b["median"] else None
        met = metric.meets(ratio, a["median"]) if metric.meets and a["median"] is not None else None
        out[metric.key] = {
            "title": metric.title,
            "unit": metric.unit,
            "better": metric.better,
            "dockyard": a,
            "distribution": b,
            "ratio": ratio,
            "target": metric.target or None,
            "target_met": met,
            "absent": metric.absent or None,
        }
    return {
        "schema": 1,
        "started_at": started_at,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": machine(),
        "servers": {
            s.key: {"title": s.title, "version": s.version, "command": s.command_line, "pid": s.pid}
            for s in servers
        },
        "config": config.as_dict(),
        "ratio": "dockyard median / distribution median; see each metric's 'better'",
        "benchmarks": out,
        "info": {b.name: b.info() for b in benchmarks if b.info()},
        "errors": errors,
    }


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def chosen(only: str, classes: Sequence[type[Benchmark]], prog: str) -> list[type[Benchmark]]:
    """The benchmarks `--only` names (all when it names none), in their own order."""
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {b.name for b in classes}
    if unknown := set(names) - known:
        raise SystemExit(f"{prog}: unknown benchmark(s) {sorted(unknown)}; known: {sorted(known)}")
    return [b for b in classes if not names or b.name in names]


def blob_pool(config: Config) -> Pool:
    """The random bytes every blob is cut from: made once, before any clock runs."""
    biggest = max(config.blob_mib, config.pull_mib, config.concurrent_mib * config.concurrent)
    return Pool(min(biggest, 512) * MiB)


def render(rows: list[tuple[str, ...]], left: set[int]) -> str:
    """Rows as aligned columns (those in `left` to the left, the rest to the right), the first
    row a heading underlined."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(w) if i in left else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(results: dict[str, Any]) -> str:
    head = (
        "benchmark",
        "better",
        "Dockyard median (min-max)",
        "Distribution median (min-max)",
        "ratio D/Dist",
        "target",
        "met",
    )
    rows = [head]
    for entry in results["benchmarks"].values():
        cells = []
        for side in ("dockyard", "distribution"):
            s = entry[side]
            absent = entry.get("absent")
            if absent and not s["median"]:
                cells.append(absent if s["median"] is None else f"{fmt(s['median'])} ({absent})")
            elif s["median"] is None:
                cells.append("error")
            elif len(s["values"]) == 1:
                cells.append(fmt(s["median"]))
            else:
                cells.append(f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})")
        ratio = entry["ratio"]
        met = {True: "yes", False: "NO", None: ""}[entry["target_met"]]
        rows.append(
            (
                entry["title"],
                entry["better"],
                *cells,
                "-" if ratio is None else f"{ratio:.2f}",
                entry["target"] or "",
                met,
            )
        )
    return render(rows, left={0, 1, 5, 6})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = make_config(args)
    classes = chosen(args.only, BENCHMARKS, "bench")
    for tool in ("curl", "wrk", "hey"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool!r} not found (run `make bench`, which installs it)")

    log = sys.stderr
    started, started_at = time.monotonic(), dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    info = machine()
    print(f"bench: {info['nproc']} cores, {info['cpu_model']}; {config.rounds} rounds", file=log)
    pool = blob_pool(config)
    benchmarks = [cls(config, pool) for cls in classes]

    tmp = Path(tempfile.mkdtemp(prefix="dockyard-bench-"))
    env = dict(item.split("=", 1) for item in args.dockyard_env)
    servers: list[Server] = [
        Dockyard(
            "dockyard",
            "Dockyard",
            tmp / "dockyard",
            extra_args=tuple(args.dockyard_arg),
            extra_env=env,
        ),
        Distribution("distribution", "Distribution", tmp / "distribution"),
    ]
    try:
        for server in servers:
            server.start()
            server.command_line = shlex.join(server.command())
            print(
                f"bench: {server.title} {server.version} on {server.url} "
                f"(pid {server.pid}): {server.command_line}",
                file=log,
            )
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
        results["info"]["peak_memory_mib_by_benchmark"] = {
            phase: {
                key: {kind: round(v / MiB, 1) for kind, v in kinds.items()}
                for key, kinds in per_server.items()
            }
            for phase, per_server in sampler.by_phase.items()
        }
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"bench: data kept in {tmp}", file=log)
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    print(
        f"\nDockyard {results['servers']['dockyard']['version']} vs Distribution "
        f"{results['servers']['distribution']['version']}; {m['nproc']} cores, "
        f"{m['cpu_model']}; {config.rounds} rounds A B, B A, ..., medians; "
        f"{results['duration_s']:.0f} s in all"
    )
    print(table(results))
    print(f"\nresults: {args.out}")
    if errors:
        print(f"bench: errors: {json.dumps(errors, indent=2)}", file=log)
        return 1
    return 0


__all__ = ["Metric", "all_metrics", "main"]
