"""Requests per second and latency percentiles from Debian's load generators.

`wrk --latency` (4.1) for GET. Debian's wrk 4.1 cannot do HEAD: its response parser waits for the
body that a HEAD response announces in Content-Length but never sends, so every connection
stalls after its first request. HEAD therefore goes through ApacheBench (`ab -k -i`, Debian's
apache2-utils, already installed for `htpasswd`), with the same connection count and duration;
every server gets the same client. On these two cores the load generator shares the CPU with
the server it measures, so its own cost per request is a floor under every server's figure:
hey (Go), used for HEAD before, spent several times what wrk does and held HEAD at about half
of GET's rate for every server (bench/README.md has the same-run comparison); `run_hey` stays
for that comparison (`--head-tool hey`).
"""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.ops import BenchError

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def parse_duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise BenchError(f"wrk: unreadable latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(output: str) -> LoadResult:
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", output, re.MULTILINE))
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if not rps or "99" not in percentiles or "50" not in percentiles or not total:
        raise BenchError(f"wrk: unreadable output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    return LoadResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=parse_duration_ms(percentiles["50"]),
        p99_ms=parse_duration_ms(percentiles["99"]),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


def _output_of(cmd: list[str], seconds: float) -> str:
    """What the load generator `cmd` (run for about `seconds`) printed, once it exited 0."""
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=seconds + 60, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise BenchError(f"{cmd[0]} exited {result.returncode}: {result.stderr or result.stdout}")
    return result.stdout


def run_wrk(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    connections: int = 64,
    threads: int = 2,
    seconds: float = 5.0,
) -> LoadResult:
    """Hammer `url` for `seconds` with `connections` keep-alive connections (not for HEAD)."""
    threads = max(1, min(threads, connections))
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        cmd = [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "--timeout",
            "10s",
        ]
        for name, value in (headers or {}).items():
            cmd += ["-H", f"{name}: {value}"]
        if method != "GET":
            script = Path(tmp) / "method.lua"
            script.write_text(f'wrk.method = "{method}"\n')
            cmd += ["-s", str(script)]
        cmd.append(url)
        output = _output_of(cmd, seconds)
    return _checked("wrk", method, url, parse(output), output)


class WrkUntilStopped:
    """wrk GETs on `url` from entering the block to leaving it: wrk runs with a long duration
    and is interrupted on exit (on SIGINT it stops and reports over the time it ran), so the
    window is set by what the caller waits for, not guessed in advance. `result` after exit."""

    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        connections: int = 64,
        threads: int = 2,
        limit_s: float = 3600.0,
    ):
        self.cmd = ["wrk", f"-t{max(1, min(threads, connections))}", f"-c{connections}"]
        self.cmd += [f"-d{round(limit_s)}s", "--latency", "--timeout", "10s"]
        for name, value in (headers or {}).items():
            self.cmd += ["-H", f"{name}: {value}"]
        self.cmd.append(url)
        self.url = url
        self.limit_s = limit_s
        self.proc: subprocess.Popen[str] | None = None
        self.result: LoadResult | None = None

    def __enter__(self) -> WrkUntilStopped:
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            # wrk reports on SIGINT only once it has set its handler, after its threads are
            # under way; one interrupted before that (a window that closed first, on a loaded
            # machine) died without a word.
            deadline = time.monotonic() + 30
            while not catches_sigint(proc.pid) and proc.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
        # wrk's handler only raises a flag, and its main thread sleeps until the end of -d: a
        # SIGINT the kernel gave to one of its load threads stopped them but left the main
        # thread asleep for the rest of the hour (CI: "wrk did not stop"). So it is sent again
        # until wrk exits: once its load threads are gone only the main thread can take it.
        stop_by = time.monotonic() + 60
        while True:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                out, err = proc.communicate(timeout=1)
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() < stop_by:
                    continue
                proc.kill()
                proc.communicate(timeout=10)
                raise BenchError(f"wrk did not stop on SIGINT: {self.url}") from None
        if exc[0] is not None:
            return
        if proc.returncode != 0:
            raise BenchError(f"wrk exited {proc.returncode}: {err or out}")
        self.result = _checked("wrk", "GET", self.url, parse(out), out)


def catches_sigint(pid: int) -> bool:
    """Whether process `pid` has a handler of its own for SIGINT (/proc: its caught-signals
    mask)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    except OSError:
        pass
    return False


def _checked(
    tool: str, method: str, url: str, parsed: LoadResult, output: str, tolerated_errors: int = 0
) -> LoadResult:
    if parsed.non_2xx or parsed.socket_errors > tolerated_errors or parsed.requests == 0:
        raise BenchError(
            f"{tool} {method} {url}: {parsed.non_2xx} non-2xx answers, "
            f"{parsed.socket_errors} errors:\n{output}"
        )
    return parsed


def parse_hey(output: str) -> LoadResult:
    percentiles = dict(re.findall(r"^\s+(\d+)% in ([\d.]+) secs", output, re.MULTILINE))
    rps = re.search(r"^\s+Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    slowest = re.search(r"^\s+Slowest:\s+([\d.]+) secs", output, re.MULTILINE)
    if "99" not in percentiles and slowest:
        # Under 100 answers (a loaded machine, a short run) hey prints no 99th percentile
        # ("0% in 0.0000 secs"): of fewer than 100, the 99th percentile is the slowest.
        percentiles["99"] = slowest.group(1)
    if not rps or "99" not in percentiles or "50" not in percentiles:
        raise BenchError(f"hey: unreadable output:\n{output}")
    statuses = output.split("Status code distribution:", 1)[-1].split("Error distribution:")[0]
    codes = [
        (int(code), int(n))
        for code, n in re.findall(r"^\s+\[(\d+)\]\s+(\d+) responses", statuses, re.MULTILINE)
    ]
    errors = 0
    if "Error distribution:" in output:
        tail = output.split("Error distribution:", 1)[1]
        errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]", tail, re.MULTILINE))
    return LoadResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=float(percentiles["50"]) * 1000,
        p99_ms=float(percentiles["99"]) * 1000,
        requests=sum(n for _, n in codes),
        non_2xx=sum(n for code, n in codes if not 200 <= code < 300),
        socket_errors=errors,
    )


def run_hey(
    url: str,
    *,
    method: str = "HEAD",
    headers: dict[str, str] | None = None,
    connections: int = 64,
    seconds: float = 5.0,
) -> LoadResult:
    cmd = [
        "hey",
        "-z",
        f"{max(1, round(seconds))}s",
        "-c",
        str(connections),
        "-m",
        method,
        "-t",
        "10",
    ]
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(url)
    output = _output_of(cmd, seconds)
    # requests cut off by the end of the -z duration come out as errors: at most one each
    return _checked("hey", method, url, parse_hey(output), output, tolerated_errors=connections)


def parse_ab(output: str, percentages: str) -> LoadResult:
    """ab's report (`output`) and its percentile table (`percentages`: the CSV of `-e`, with
    microsecond resolution where the report has whole milliseconds)."""
    rps = re.search(r"^Requests per second:\s+([\d.]+)", output, re.MULTILINE)
    done = re.search(r"^Complete requests:\s+(\d+)", output, re.MULTILINE)
    failed = re.search(r"^Failed requests:\s+(\d+)", output, re.MULTILINE)
    non_2xx = re.search(r"^Non-2xx responses:\s+(\d+)", output, re.MULTILINE)
    kept = re.search(r"^Keep-Alive requests:\s+(\d+)", output, re.MULTILINE)
    table = dict(re.findall(r"^(\d+),([\d.]+)$", percentages, re.MULTILINE))
    if not rps or not done or not failed or "50" not in table or "99" not in table:
        raise BenchError(f"ab: unreadable output:\n{output}\n{percentages}")
    requests = int(done.group(1))
    # Requests on a connection the server closed count too: a new connection each time would
    # measure connection set-up, not the answer.
    reconnected = requests - int(kept.group(1)) if kept else requests
    return LoadResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=float(table["50"]),
        p99_ms=float(table["99"]),
        requests=requests,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=int(failed.group(1)) + reconnected,
    )


# ab keeps a record of every request, allocated for `-n` of them before it starts: room for
# this many per second, far above any server's rate here.
_AB_MAX_PER_S = 200_000


def run_ab(
    url: str,
    *,
    method: str = "HEAD",
    headers: dict[str, str] | None = None,
    connections: int = 64,
    seconds: float = 5.0,
) -> LoadResult:
    """`connections` keep-alive connections on `url` for `seconds` through ab: HEAD or GET."""
    if method not in ("HEAD", "GET"):
        raise BenchError(f"ab sends HEAD or GET, not {method}")
    duration = max(1, round(seconds))
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        table = Path(tmp) / "percentages.csv"
        # -t first: it sets -n to 50,000, which the -n after it lifts.
        cmd = ["ab", "-k", "-q", "-S", "-t", str(duration), "-n", str(duration * _AB_MAX_PER_S)]
        cmd += ["-c", str(connections), "-s", "10", "-e", str(table)]
        if method == "HEAD":
            cmd.append("-i")
        for name, value in (headers or {}).items():
            cmd += ["-H", f"{name}: {value}"]
        cmd.append(url)
        output = _output_of(cmd, seconds)
        percentages = table.read_text()
    # a connection still waiting for its answer when the time is up is neither
    return _checked(
        "ab",
        method,
        url,
        parse_ab(output, percentages),
        output,
        tolerated_errors=connections,
    )


HEAD_TOOLS = ("ab", "hey")


def run(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    connections: int = 64,
    threads: int = 2,
    seconds: float = 5.0,
    head_tool: str = "ab",
) -> LoadResult:
    """`connections` keep-alive connections on `url` for `seconds`: wrk for GET, else
    `head_tool` (ab, or hey)."""
    if method == "GET":
        return run_wrk(
            url,
            method=method,
            headers=headers,
            connections=connections,
            threads=threads,
            seconds=seconds,
        )
    if head_tool == "hey":
        return run_hey(
            url, method=method, headers=headers, connections=connections, seconds=seconds
        )
    return run_ab(url, method=method, headers=headers, connections=connections, seconds=seconds)


def tool_for(method: str, head_tool: str = "ab") -> str:
    return "wrk" if method == "GET" else head_tool
