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

from bench import load
from bench.ops import BenchError
from bench.payload import MiB, Pool
from bench.servers import Distribution, DistributionV3, Dockyard, PeakSampler, Server, Sink
from bench.suite import (
    BENCHMARKS,
    PEAK_MEMORY,
    PEAK_PSS,
    PEAK_RSS,
    QUICK,
    Benchmark,
    Config,
    Metric,
    all_metrics,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.json"
# The two Distributions beside Dockyard; on each benchmark the faster one is the anchor.
DISTRIBUTIONS = ("distribution_v3", "distribution")
SINK = "sink"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Dockyard against CNCF Distribution v3.1.1 and 2.8.2 (and, for blob "
        "transfers, the bare sink) on loopback, in turn (A B C, B C A, ...): medians per server, "
        "Dockyard's ratio to each and to the faster Distribution.",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="the growth benchmarks instead (bench.growth): listings and a manifest PUT as the "
        "metadata store grows; see `python -m bench --scale --help`",
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
        if f.name == "head_tool":
            parser.add_argument(
                "--head-tool",
                dest=f.name,
                choices=load.HEAD_TOOLS,
                default=None,
                help=f"the load generator for HEAD (default {f.default})",
            )
            continue
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
        here = [s for s in servers if applies(bench, s)]
        try:
            for server in here:
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
            _rounds(config, here, bench, failed, values, errors, log)
        finally:
            bench.teardown()
    return values, errors


def applies(bench: Benchmark, server: Server) -> bool:
    """Whether `bench` runs on `server` (every benchmark runs on every registry)."""
    check = getattr(bench, "applies", None)
    return True if check is None else bool(check(server))


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


def anchor_of(metric: Metric, medians: dict[str, float | None]) -> str | None:
    """The faster (by `metric.better`) of the Distributions with a figure: the anchor."""
    known = [(medians[k], k) for k in DISTRIBUTIONS if medians.get(k) is not None]
    if not known:
        return None
    pick = max if metric.better == "higher" else min
    return pick(known)[1]


def ratio_of(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def judge(
    metric: Metric, ratio: float | None, value: float | None, of_sink: float | None
) -> bool | None:
    """Issue 21's target: the ratio to the anchor and, for transfers, the share of the sink."""
    if metric.meets is None or value is None:
        return None
    met = metric.meets(ratio, value)
    if metric.of_sink and met is not None:
        met = None if of_sink is None else met and of_sink >= metric.of_sink
    return met


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
    """Per metric: each server's summary, Dockyard's ratio to each Distribution (`ratio`: to
    2.8.2, as before; `ratio_v3`) and to the anchor, the faster of the two (`anchor`,
    `ratio_anchor`), its share of the sink's figure where the sink ran, and the target met."""
    registries = [s for s in servers if s.key != SINK]
    memory = {s.key: peak_pss[s.key] if s.key == "dockyard" else peak[s.key] for s in registries}
    metrics = [m for b in benchmarks for m in b.metrics] + [PEAK_RSS, PEAK_PSS, PEAK_MEMORY]
    values = {
        **values,
        PEAK_RSS.key: {s.key: [peak[s.key] / MiB] for s in registries},
        PEAK_PSS.key: {s.key: [peak_pss[s.key] / MiB] for s in registries},
        PEAK_MEMORY.key: {key: [v / MiB] for key, v in memory.items()},
    }
    owner = {m.key: b for b in benchmarks for m in b.metrics}
    out: dict[str, Any] = {}
    for metric in metrics:
        per = {s.key: summary(values[metric.key].get(s.key, [])) for s in servers}
        bench = owner.get(metric.key)
        for s in servers:
            # A server the benchmark does not run on (Distribution v3's gc figures come from
            # Distribution's turn) shows as not run, not as a failure.
            if bench is not None and not bench.applies(s) and not per[s.key]["values"]:
                per[s.key]["not_run"] = True
        medians = {key: p["median"] for key, p in per.items()}
        dockyard = medians["dockyard"]
        anchor = anchor_of(metric, medians)
        ratio_anchor = ratio_of(dockyard, medians[anchor]) if anchor else None
        of_sink = ratio_of(dockyard, medians.get(SINK))
        out[metric.key] = {
            "title": metric.title,
            "unit": metric.unit,
            "better": metric.better,
            **per,
            "ratio": ratio_of(dockyard, medians.get("distribution")),
            "ratio_v3": ratio_of(dockyard, medians.get("distribution_v3")),
            "anchor": anchor,
            "ratio_anchor": ratio_anchor,
            "of_sink": of_sink,
            "target": metric.target or None,
            "target_met": judge(metric, ratio_anchor, dockyard, of_sink),
            "absent": metric.absent or None,
        }
    return {
        "schema": 2,
        "started_at": started_at,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": machine(),
        "servers": {
            s.key: {"title": s.title, "version": s.version, "command": s.command_line, "pid": s.pid}
            for s in servers
        },
        "config": config.as_dict(),
        "ratio": "dockyard median / distribution median; see each metric's 'better'; "
        "ratio_anchor: to the faster Distribution (anchor)",
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
    if not names:
        return [b for b in classes if getattr(b, "in_default", True)]
    return [b for b in classes if b.name in names]


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


def cell(entry: dict[str, Any], side: str) -> str:
    """One server's figure: median (min-max), or why there is none."""
    s = entry.get(side) or {"median": None, "values": []}
    if s.get("not_run"):
        return "-"
    absent = entry.get("absent")
    if absent and not s["median"]:
        return absent if s["median"] is None else f"{fmt(s['median'])} ({absent})"
    if s["median"] is None:
        return "-" if side == SINK else "error"
    if len(s["values"]) == 1:
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min'])}-{fmt(s['max'])})"


def table(results: dict[str, Any]) -> str:
    sink = any(e.get(SINK, {}).get("values") for e in results["benchmarks"].values())
    head = (
        "benchmark",
        "better",
        "Dockyard median (min-max)",
        "Dist. v3",
        "Dist. 2.8",
        *(("sink",) if sink else ()),
        "D/v3",
        "D/2.8",
        "D/faster",
        *(("of sink",) if sink else ()),
        "target",
        "met",
    )
    rows = [head]

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for entry in results["benchmarks"].values():
        met = {True: "yes", False: "NO", None: ""}[entry["target_met"]]
        of_sink = entry.get("of_sink")
        rows.append(
            (
                entry["title"],
                entry["better"],
                cell(entry, "dockyard"),
                cell(entry, "distribution_v3"),
                cell(entry, "distribution"),
                *((cell(entry, SINK),) if sink else ()),
                ratio(entry.get("ratio_v3")),
                ratio(entry["ratio"]),
                ratio(entry.get("ratio_anchor")),
                *(("-" if of_sink is None else f"{of_sink:.0%}",) if sink else ()),
                entry["target"] or "",
                met,
            )
        )
    return render(rows, left={0, 1, len(head) - 2, len(head) - 1})


def main(argv: list[str] | None = None) -> int:
    if "--scale" in (sys.argv[1:] if argv is None else argv):
        from bench import growth

        rest = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--scale"]
        return growth.main(rest)
    args = parse_args(argv)
    config = make_config(args)
    classes = chosen(args.only, BENCHMARKS, "bench")
    for tool in ("curl", "wrk", config.head_tool):
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
        DistributionV3("distribution_v3", "Distribution v3", tmp / "distribution-v3"),
        Distribution("distribution", "Distribution", tmp / "distribution"),
    ]
    if any(b.on_sink for b in benchmarks):
        # the machine's own limit for the blob transfers, in the same run (bench.ceiling)
        servers.append(Sink(SINK, "sink", tmp / "sink"))
    try:
        for server in servers:
            server.start()
            server.command_line = shlex.join(server.command())
            print(
                f"bench: {server.title} {server.version} on {server.url} "
                f"(pid {server.pid}): {server.command_line}",
                file=log,
            )
        with PeakSampler([s for s in servers if s.key != SINK]) as sampler:
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
    versions = results["servers"]
    print(
        f"\nDockyard {versions['dockyard']['version']} vs Distribution "
        f"{versions['distribution_v3']['version']} and {versions['distribution']['version']}"
        f"{' (and the bare sink for blob transfers)' if SINK in versions else ''}; "
        f"{m['nproc']} cores, {m['cpu_model']}; {config.rounds} rounds in turn (A B C, B C A, "
        f"...), medians; D/faster: to the faster Distribution; {results['duration_s']:.0f} s in all"
    )
    print(table(results))
    print(f"\nresults: {args.out}")
    if errors:
        print(f"bench: errors: {json.dumps(errors, indent=2)}", file=log)
        return 1
    return 0


__all__ = ["Metric", "all_metrics", "main"]
