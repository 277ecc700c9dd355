"""The two servers under test, started and stopped here, and the memory of their process trees."""

from __future__ import annotations

import abc
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
PORT_ATTEMPTS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(name: str, *extra: Path) -> str:
    for candidate in extra:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin:/usr/local/bin")
    if not found:
        raise SystemExit(f"bench: {name!r} not found (run `make bench`, which installs the peers)")
    return found


# ---------------------------------------------------------------------------------------------
# memory of a process tree, from /proc


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # the command name may contain spaces and parentheses: the fields follow the last ')'
        fields = stat[stat.rfind(b")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _listening_inodes(port: int) -> set[str]:
    """The inodes of the TCP sockets listening on `port` (any address), from /proc/net."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            listening = len(fields) > 9 and fields[3] == "0A"  # TCP_LISTEN
            if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found


def tree_pids(root: int) -> list[int]:
    children = _children_map()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, ()))
    return pids


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time these processes have used so far, added up: divided by the
    requests served in between, a cost per request that other load on the machine barely moves
    (unlike requests per second)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_bytes(pids: list[int]) -> int:
    """Resident set size of these processes added up (what `ps` shows as RSS, summed)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE_SIZE
        except (OSError, IndexError, ValueError):
            continue  # exited between the scan and the read
    return total


def pss_bytes(pids: list[int]) -> int:
    """Proportional set size added up: pages shared by several processes (a forked worker and
    its parent) are split between them, so the sum is the memory the tree really holds."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except (OSError, IndexError, ValueError):
            continue
    return total


class TreeMemory:
    """Samples the RSS of a process tree: the tree is rescanned every `rescan` seconds."""

    def __init__(self, root: int, rescan: float = 0.5):
        self.root = root
        self.rescan = rescan
        self._pids: list[int] = []
        self._scanned = 0.0

    def sample(self) -> int:
        now = time.monotonic()
        if now - self._scanned >= self.rescan or not self._pids:
            self._pids = tree_pids(self.root)
            self._scanned = now
        return rss_bytes(self._pids)

    @property
    def pids(self) -> list[int]:
        return self._pids


def thread_times(pids: list[int]) -> dict[tuple[int, int], int]:
    """Nanoseconds each thread of these processes has run (`/proc/PID/task/TID/schedstat`:
    exact, where `cpu_seconds` counts whole clock ticks, 10 ms, coarser than one request)."""
    out: dict[tuple[int, int], int] = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as f:
                    out[(pid, int(tid))] = int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return out


class CpuMeter:
    """The CPU a server's process tree spends between `start` and `stop`. A thread started
    meanwhile counts whole; one that ended meanwhile loses its last part (granian's threads
    live as long as their worker)."""

    def __init__(self, server: Server) -> None:
        self.root = server.pid
        self.before: dict[tuple[int, int], int] = {}

    def start(self) -> None:
        self.before = thread_times(tree_pids(self.root))

    def stop(self) -> float:
        """Seconds of CPU since `start`."""
        after = thread_times(tree_pids(self.root))
        return sum(ns - self.before.get(key, 0) for key, ns in after.items()) / 1e9


class PeakSampler:
    """A background thread noting the highest RSS (and PSS) of each server's tree.

    RSS (`/proc/PID/statm`) is read every `interval`; PSS only every `pss_interval`, at each
    new phase and once more at the end. Reading PSS (`smaps_rollup`) walks every mapping of
    each process under its memory-map lock while the server serves, and costs the bench's
    own CPU (6-7 ms a read of Dockyard's tree): ten times a second it took about 5 % of a
    lone Dockyard's manifest GETs and lengthened their tail (bench/README.md)."""

    def __init__(self, servers: list[Server], interval: float = 0.1, pss_interval: float = 1.0):
        self.servers = servers
        self.interval = interval
        self.pss_interval = pss_interval
        self.peak: dict[str, int] = {s.key: 0 for s in servers}
        self.peak_pss: dict[str, int] = {s.key: 0 for s in servers}
        # the same peaks per benchmark (set `phase` to its name): where the peak was reached
        self._phase = "start"
        self._pss_due = True  # a new phase has its PSS read at the next sample
        self.by_phase: dict[str, dict[str, dict[str, int]]] = {}
        self._memories = {s.key: TreeMemory(s.pid) for s in servers}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    @property
    def phase(self) -> str:
        return self._phase

    @phase.setter
    def phase(self, name: str) -> None:
        self._phase = name
        self._pss_due = True

    def _run(self) -> None:
        last_pss = time.monotonic()
        while not self._stop.wait(self.interval):
            now = time.monotonic()
            with_pss = self._pss_due or now - last_pss >= self.pss_interval
            if with_pss:
                last_pss, self._pss_due = now, False
            self._sample(with_pss)

    def _sample(self, with_pss: bool) -> None:
        for key, memory in self._memories.items():
            rss = memory.sample()
            pss = pss_bytes(memory.pids) if with_pss else 0
            self.peak[key] = max(self.peak[key], rss)
            self.peak_pss[key] = max(self.peak_pss[key], pss)
            phase = self.by_phase.setdefault(self.phase, {}).setdefault(key, {"rss": 0, "pss": 0})
            phase["rss"], phase["pss"] = max(phase["rss"], rss), max(phase["pss"], pss)

    def __enter__(self) -> PeakSampler:
        for key, memory in self._memories.items():
            self.peak[key] = memory.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        with contextlib.suppress(OSError):
            self._sample(with_pss=True)


class RssWatch:
    """High-frequency RSS watch of one server during one operation: baseline and peak."""

    def __init__(self, server: Server, interval: float = 0.02):
        self.memory = TreeMemory(server.pid, rescan=0.25)
        self.interval = interval
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.memory.sample())

    def __enter__(self) -> RssWatch:
        self.baseline = self.peak = self.memory.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak = max(self.peak, self.memory.sample())

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


# ---------------------------------------------------------------------------------------------
# the servers


@dataclass
class Server(abc.ABC):
    """One registry process (and its children) on 127.0.0.1, started in its own session."""

    key: str
    title: str
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    version: str = ""
    command_line: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @abc.abstractmethod
    def command(self) -> list[str]:
        """How to start this server."""

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout: float = 30.0) -> Server:
        """Start and wait until `/v2/` answers. A free port another program takes before the
        server binds it (a loaded machine running many servers) is given up for another:
        the server then exits saying so, or something else answers in its place."""
        for _ in range(PORT_ATTEMPTS):
            if self._started(timeout):
                return self
            self.port = free_port()
        raise RuntimeError(f"{self.title}: every port it was given was taken before it bound it")

    def listens(self) -> bool:
        """Whether this server's own processes hold the socket listening on its port."""
        sockets = {f"socket:[{inode}]" for inode in _listening_inodes(self.port)}
        for pid in tree_pids(self.pid) if sockets else ():
            try:
                fds = os.listdir(f"/proc/{pid}/fd")
            except OSError:
                continue
            for fd in fds:
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in sockets:
                        return True
                except OSError:
                    continue
        return False

    def _started(self, timeout: float) -> bool:
        """Start once: True when up, False when its port turned out to be another's."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        logged = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                if "already in use" in self.log_tail(logged=logged).lower():
                    return False
                raise RuntimeError(
                    f"{self.title} exited with {self.proc.returncode} at start:\n{self.log_tail()}"
                )
            try:
                # 401: up, with accounts on
                if httpx.get(self.url + "/v2/", timeout=1.0).status_code in (200, 401):
                    if self.listens():
                        return True
                    self.stop()  # another program answered on its port
                    return False
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.title} did not answer within {timeout}s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the process group this server leads (only what we started), then SIGKILL."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000, logged: int = 0) -> str:
        """The log's last `chars` characters, of what came after its first `logged` bytes."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(logged)
                return log.read().decode(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Dockyard(Server):
    """`dockyard serve --listen 127.0.0.1:PORT --data-dir DIR`, as the README starts it."""

    extra_args: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)

    def binary(self) -> str:
        return find_binary("dockyard", Path(sys.executable).parent / "dockyard")

    def command(self) -> list[str]:
        return [
            self.binary(),
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.workdir / "data"),
            *self.extra_args,
        ]

    def env(self) -> dict[str, str]:
        # Run from bytecode, as an installed Dockyard does (pip writes it at install; the
        # image keeps it): with PYTHONDONTWRITEBYTECODE set, as in a development shell, a
        # checkout's modules were compiled again at every start (about 0.1 s of each start
        # to ready, and the memory the compiler leaves behind). The first start writes it.
        env = {**os.environ, **self.extra_env}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        return env

    def start(self, timeout: float = 30.0) -> Server:
        self.version = _dockyard_version()
        return super().start(timeout)


def _dockyard_version() -> str:
    try:
        from importlib.metadata import version

        release = version("dockyard")
    except Exception:
        release = "?"
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{release} ({commit})" if commit else release


DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""


@dataclass
class Distribution(Server):
    """`docker-registry serve CONFIG`: filesystem storage, deletes on, errors-only logs.

    The in-memory blob descriptor cache is the one Debian's and the registry:2 image's default
    configurations turn on, so this is Distribution as its users run it. With `proxy_url` it
    is Distribution's own pull-through cache of that registry.
    """

    proxy_url: str | None = None

    def command(self) -> list[str]:
        config = self.workdir / "config.yml"
        text = DISTRIBUTION_CONFIG.format(root=self.workdir / "data", port=self.port)
        if self.proxy_url:
            text += f"proxy:\n  remoteurl: {self.proxy_url}\n"
        config.write_text(text)
        return [self.binary(), "serve", str(config)]

    def binary(self) -> str:
        return find_binary("docker-registry")

    def start(self, timeout: float = 30.0) -> Server:
        try:
            out = subprocess.run(
                [self.binary(), "--version"],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.split()
            self.version = out[-1] if out else "?"
        except (OSError, subprocess.SubprocessError):
            self.version = "?"
        return super().start(timeout)


# CNCF Distribution v3 is not packaged by Debian: it lies with the other shared peers, beside
# the checkout, or where DOCKYARD_PEERS_DIR says (as for the tests).
SHARED_PEERS = Path(__file__).resolve().parents[2] / "shared" / "peers" / "bin"


@dataclass
class DistributionV3(Distribution):
    """CNCF Distribution v3.1.1 (`registry-v3`), with the same configuration as 2.8.2: v3
    reads the same keys for everything set here."""

    def binary(self) -> str:
        shared = Path(os.environ.get("DOCKYARD_PEERS_DIR") or SHARED_PEERS)
        return find_binary("registry-v3", shared / "registry-v3")

    def env(self) -> dict[str, str]:
        # v3 exports traces by default and, with no collector listening, keeps retrying.
        return {**os.environ, "OTEL_TRACES_EXPORTER": "none"}


@dataclass
class Sink(Server):
    """`python -m bench.sink`: the least a registry must do to take and give blobs (hash, write,
    sync, read, send), as a server: this machine's own limit for the transfers."""

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "bench.sink",
            "--port",
            str(self.port),
            "--data",
            str(self.workdir / "data"),
        ]

    def env(self) -> dict[str, str]:
        root = str(Path(__file__).resolve().parent.parent)
        path = os.environ.get("PYTHONPATH")
        return {**os.environ, "PYTHONPATH": f"{root}:{path}" if path else root}

    def start(self, timeout: float = 30.0) -> Server:
        self.version = "bench.sink"
        return super().start(timeout)
