"""The server's Prometheus series, one set per process, and what one scrape shows.

Every worker process writes its own values; with `PROMETHEUS_MULTIPROC_DIR` set (by
`dockyard serve`, see `cli/metrics_folder.py`) they go to memory-mapped files in a folder of
that server's own, and a scrape in any process adds up the files of all of them. A worker that
died leaves its counters' files behind, so its counts neither vanish nor double (its respawned
successor has another pid, hence other files); its live gauges (uploads in flight) are dropped
at the next scrape. `prometheus_client` is imported only when metrics are on, and only once
the serving process has set the folder: the library decides at import which value store it
uses.

What happens on every request (its count, duration and bytes; each metadata transaction) is
gathered in plain dictionaries and handed to the library once a second (`flush`): each of the
library's updates takes a lock, checks the pid and writes the memory-mapped file, several
microseconds, while a manifest GET is some tens of microseconds of Python in all. A scrape
sees other workers' requests up to a second late, and a worker killed outright takes its last
second of them along (its earlier counts stay in its files).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard.service.gc import GcReport

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The serving process's pid, set by `dockyard serve` for its workers: whose processes a scrape
# adds up (a worker's parent is that process, whoever answers the scrape).
SERVER_PID_ENV = "DOCKYARD_SERVER_PID"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Gathered observations reach the files this often (figures: bench/README.md).
FLUSH_SECONDS = 1.0
Bounds = tuple[float, ...]
# Seconds; from a cached manifest's answer to a large blob's.
REQUEST_BUCKETS: Bounds = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)
TRANSACTION_BUCKETS: Bounds = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    5,
)
_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


class Metrics:
    """The series of this process; their names say their units, as Prometheus recommends."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        # Never the library's global registry: tests build several apps in one process, and
        # in multiprocess mode a scrape reads the files, not this registry.
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "dockyard_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "dockyard_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer",
            ["route", "method"],
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self.received = Counter(
            "dockyard_http_received_bytes",
            "Request body bytes received, by route template",
            ["route"],
            registry=r,
        )
        self.sent = Counter(
            "dockyard_http_sent_bytes",
            "Response body bytes sent, by route template",
            ["route"],
            registry=r,
        )
        self.uploads_in_flight = Gauge(
            "dockyard_uploads_in_flight",
            "Upload requests (POST, PATCH, PUT of blob uploads) in progress",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.rate_limited = Counter(
            "dockyard_rate_limit_refusals",
            "Requests refused with 429 TOOMANYREQUESTS (pull limits, login throttling, "
            "requests in progress per client, an upstream's own limit)",
            ["route"],
            registry=r,
        )
        self.cache = Counter(
            "dockyard_cache_requests",
            "Pull-through cache lookups: hit (served from what is held) or miss (fetched)",
            ["kind", "result"],
            registry=r,
        )
        self.upstream_errors = Counter(
            "dockyard_cache_upstream_errors",
            "Failed requests to an upstream of the pull-through cache",
            ["upstream"],
            registry=r,
        )
        self.transaction = Histogram(
            "dockyard_metadata_transaction_seconds",
            "Metadata store transactions (a group commit counts once), by kind",
            ["kind"],
            buckets=TRANSACTION_BUCKETS,
            registry=r,
        )
        self.retries = Counter(
            "dockyard_metadata_transaction_retries",
            "Write transactions run again (a conflict on PostgreSQL; on SQLite, a group "
            "commit split after one of its writes failed)",
            registry=r,
        )
        self.gc_runs = Counter(
            "dockyard_gc_runs", "Garbage collection rounds that reclaimed or checked", registry=r
        )
        self.gc_items = Counter(
            "dockyard_gc_reclaimed_items",
            "Items garbage collection removed, by kind",
            ["kind"],
            registry=r,
        )
        self.gc_bytes = Counter(
            "dockyard_gc_reclaimed_bytes", "Blob bytes garbage collection removed", registry=r
        )
        self.events_dropped = Counter(
            "dockyard_events_dropped",
            "Pull events given up while the metadata store could not take them (each pull "
            "counts once)",
            registry=r,
        )
        for kind in ("read", "write"):
            self.transaction.labels(kind)
        for kind in GC_KINDS:
            self.gc_items.labels(kind)
        # Gathered between flushes. The request dictionaries are the event loop's alone; the
        # transactions' are also written from the metadata store's threads, under the lock.
        self._requests: dict[tuple[str, str, int], int] = {}
        self._durations: dict[tuple[str, str], list[float]] = {}
        self._received: dict[str, int] = {}
        self._sent: dict[str, int] = {}
        self._transactions: dict[str, list[float]] = {}
        self._retries = 0
        self._lock = threading.Lock()

    # -- on every request: plain dictionaries ------------------------------------------------
    def request_done(
        self, route: str, method: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        _gather(self._durations, (route, method), REQUEST_BUCKETS, seconds)
        if received:
            self._received[route] = self._received.get(route, 0) + received
        if sent:
            self._sent[route] = self._sent.get(route, 0) + sent
        if status == 429:  # rare: counted at once
            self.rate_limited.labels(route).inc()

    # -- hooks handed to the layers below (they know nothing of Prometheus) -----------------
    def transaction_done(self, kind: str, seconds: float, retries: int) -> None:
        with self._lock:
            _gather(self._transactions, kind, TRANSACTION_BUCKETS, seconds)
            self._retries += retries

    def gc_round(self, report: GcReport) -> None:
        if report.dry_run:
            return
        self.gc_runs.inc()
        for kind in GC_KINDS:
            count = getattr(report, kind)
            if count:
                self.gc_items.labels(kind).inc(count)
        if report.bytes:
            self.gc_bytes.inc(report.bytes)

    def pulls_dropped(self, count: int) -> None:
        self.events_dropped.inc(count)

    def cache_lookup(self, kind: str, hit: bool) -> None:
        self.cache.labels(kind, "hit" if hit else "miss").inc()

    def upstream_failed(self, upstream: str) -> None:
        self.upstream_errors.labels(upstream).inc()

    # -- into the library ------------------------------------------------------------------
    def flush(self) -> None:
        """Hand what was gathered to the library (on the event loop's thread)."""
        requests, self._requests = self._requests, {}
        durations, self._durations = self._durations, {}
        received, self._received = self._received, {}
        sent, self._sent = self._sent, {}
        with self._lock:
            transactions, self._transactions = self._transactions, {}
            retries, self._retries = self._retries, 0
        for (route, method, status), count in requests.items():
            self.requests.labels(route, method, str(status)).inc(count)
        for (route, method), gathered in durations.items():
            _observe_many(self.duration.labels(route, method), gathered)
        for route, count in received.items():
            self.received.labels(route).inc(count)
        for route, count in sent.items():
            self.sent.labels(route).inc(count)
        for kind, gathered in transactions.items():
            _observe_many(self.transaction.labels(kind), gathered)
        if retries:
            self.retries.inc(retries)

    async def flush_every(self, seconds: float = FLUSH_SECONDS) -> None:
        """Flush until cancelled, and once more then (a worker stopping hands in its last)."""
        try:
            while True:
                await asyncio.sleep(seconds)
                self.flush()
        finally:
            with contextlib.suppress(Exception):
                self.flush()


def _gather(
    into: dict[Any, list[float]], key: Any, bounds: tuple[float, ...], value: float
) -> None:
    """Count `value` in its bucket (the first whose bound is at least it, as the library
    does; past the last, +Inf) and add it to the sum, kept last."""
    gathered = into.get(key)
    if gathered is None:
        gathered = into[key] = [0.0] * (len(bounds) + 2)
    gathered[bisect_left(bounds, value)] += 1
    gathered[-1] += value


def _observe_many(child: Any, gathered: list[float]) -> None:
    """Many observations into one histogram child at once. The library observes one value at
    a time; it keeps a value per bucket (not cumulative: the exposition adds them up) and
    their sum, which is what this adds to."""
    for bucket, count in zip(child._buckets, gathered[:-1], strict=True):
        if count:
            bucket.inc(count)
    child._sum.inc(gathered[-1])


GC_KINDS = ("blobs", "links", "manifests", "uploads", "strays")

_metrics: Metrics | None = None


def process_metrics() -> Metrics:
    """This process's series, made on first use (a second set would write the same files)."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


def exposition(listen_port: int | None) -> bytes:
    """The text one scrape answers: every process of this server added up (or this process
    alone, when no folder is set), with the server's memory and open connections."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    folder = os.environ.get(MULTIPROCESS_ENV)
    scrape = CollectorRegistry(auto_describe=False)
    if folder:
        processes = ServerProcesses(Path(folder), server_pid(), listen_port)
        processes.forget_dead()
        multiprocess.MultiProcessCollector(scrape, path=folder)
    else:
        processes = ServerProcesses(None, os.getpid(), listen_port)
        scrape.register(_Forward(process_metrics().registry))
    scrape.register(processes)
    return generate_latest(scrape)


def server_pid() -> int:
    """The serving process: named by `dockyard serve`, else this one."""
    value = os.environ.get(SERVER_PID_ENV, "")
    return int(value) if value.isdigit() else os.getpid()


class _Forward:
    """Collects another registry's series into a scrape (the single-process case)."""

    def __init__(self, registry: Any) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Any]:
        yield from self.registry.collect()


@dataclass(eq=False)
class ServerProcesses:
    """The serving process and its workers, read from /proc at scrape time: nothing to
    update on the request path, and right whichever worker answers."""

    folder: Path | None
    main_pid: int
    listen_port: int | None

    def workers(self) -> tuple[list[int], list[int]]:
        """(alive, gone): pids that wrote series here, by whether they still serve."""
        if self.folder is None:
            return [], []
        pids = set()
        for entry in os.scandir(self.folder):
            found = _PID_IN_NAME.search(entry.name)
            if found:
                pids.add(int(found.group(1)))
        alive: list[int] = []
        gone: list[int] = []
        for pid in sorted(pids):
            (alive if pid != self.main_pid and _parent(pid) == self.main_pid else gone).append(pid)
        return alive, gone

    def forget_dead(self) -> None:
        """Drop the live gauges of workers that are gone (their counters stay)."""
        from prometheus_client import multiprocess

        assert self.folder is not None
        for pid in self.workers()[1]:
            multiprocess.mark_process_dead(pid, str(self.folder))

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        alive = self.workers()[0]
        pids = [self.main_pid, *alive]
        memory = sum(_resident_bytes(pid) for pid in pids)
        yield GaugeMetricFamily(
            "dockyard_process_resident_memory_bytes",
            "Resident memory of the serving process and its workers, added up",
            value=memory,
        )
        yield GaugeMetricFamily("dockyard_workers", "Worker processes alive", value=len(alive))
        if self.listen_port is not None:
            yield GaugeMetricFamily(
                "dockyard_open_connections",
                "Established TCP connections to the listening port (every worker's)",
                value=open_connections(self.listen_port),
            )


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces: fields count from its end.
    return int(stat[stat.rindex(b")") + 2 :].split()[1])


def _resident_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


_ESTABLISHED = "01"


def open_connections(port: int) -> int:
    """Established connections whose local end is `port`, over IPv4 and IPv6."""
    wanted = f"{port:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    fields = line.split(None, 4)
                    if fields[3] == _ESTABLISHED and fields[1].rpartition(":")[2] == wanted:
                        count += 1
        except OSError:
            continue
    return count
