"""Start and stop real `dockyard serve` processes for tests, on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# What this test process's servers logged, and the secrets tests gave them: at the session's
# end `tests/conftest.py` greps the one for the other (per process, as under pytest-xdist).
SERVER_LOGS: list[Path] = []
SECRETS: set[str] = set()


def register_secret(*values: str) -> None:
    """Secrets (passwords, tokens) no server log may contain."""
    SECRETS.update(v for v in values if len(v) >= 8)


def server_logs() -> Iterator[tuple[Path, str]]:
    """Each log of this process's servers that is still there, with its text."""
    for path in dict.fromkeys(SERVER_LOGS):
        try:
            yield path, path.read_text(errors="replace")
        except FileNotFoundError:
            continue


def leaked_secrets() -> dict[Path, list[str]]:
    """The secrets found in the logs of this process's servers, by log."""
    found: dict[Path, list[str]] = {}
    for path, text in server_logs():
        hits = sorted(s for s in SECRETS if s in text)
        if hits:
            found[path] = hits
    return found


# What the faulthandler the servers run with (PYTHONFAULTHANDLER) writes when a process dies
# of SIGSEGV, SIGBUS, SIGABRT or SIGFPE, followed by the signal's name.
NATIVE_CRASH = "Fatal Python error: "


def native_crashes() -> list[tuple[Path, str]]:
    """The logs of this process's servers in which a process died of a native crash, each
    with the first such line."""
    found = []
    for path, text in server_logs():
        start = text.find(NATIVE_CRASH)
        if start >= 0:
            found.append((path, text[start : text.find("\n", start)]))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# How long a server may take to answer after its start. Not a measure of start-up: under
# pytest-xdist several servers start at once on the same cores, and on a loaded 2-core machine a
# `dockyard serve` with two workers took 21 s before its first answer, over the 20 s once allowed.
START_TIMEOUT = 90.0
PORT_ATTEMPTS = 5


def wait_for_http(
    url: str, timeout: float = START_TIMEOUT, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError as exc:
            last = exc
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


class OnLoopback:
    """A server of the tests' own on 127.0.0.1: `host` is what clients call it, `url` its base."""

    port: int

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"


def serve_command(listen: str, data_dir: Path, *args: str) -> list[str]:
    """`dockyard serve` on `listen` (HOST:PORT) with its data in `data_dir`, by this Python."""
    return [
        sys.executable,
        "-m",
        "dockyard",
        "serve",
        "--listen",
        listen,
        "--data-dir",
        str(data_dir),
        *args,
    ]


@dataclass
class RunningRegistry(OnLoopback):
    """A `dockyard serve` subprocess."""

    data_dir: Path
    port: int
    args: Sequence[str] = ()
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log_dir: Path | None = None
    log_path: Path | None = None
    # A command the server is started through, e.g. `prlimit …` for limits of its own: the
    # test process's limits are its own and those of the other tests in it.
    launcher: Sequence[str] = ()
    # The port was picked free by the caller and any other will do: when another program
    # takes it before the server binds it (many servers start at once in a run), the server
    # says so and exits, and is started again on another.
    any_port: bool = False

    def start(self) -> RunningRegistry:
        for _ in range(PORT_ATTEMPTS - 1):
            try:
                return self._start()
            except RuntimeError:
                if not (self.any_port and "already in use" in self.log()):
                    raise
            self.port = free_port()
        return self._start()

    def _start(self) -> RunningRegistry:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = (self.log_dir or self.data_dir.parent) / f"server-{self.port}.log"
        SERVER_LOGS.append(self.log_path)
        cmd = [*self.launcher, *serve_command(self.host, self.data_dir, *self.args)]
        # A native crash names its place in the log (`native_crashes`).
        env = {"PYTHONFAULTHANDLER": "1", **os.environ, **self.env}
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            wait_for_http(self.url + "/v2/", proc=self.proc)
        except Exception:
            self.stop()  # a server that never answered in time must not outlive its test run
            raise
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup runs, as in a crash."""
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def log_once_it_has(self, text: str, timeout: float = 10.0) -> str:
        """The log once `text` is in it: a worker writes its access lines at the end of its
        event loop's turn, after the answer has left, so a client can read the log first."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{log[-2000:]}"
            time.sleep(0.05)
        return log
