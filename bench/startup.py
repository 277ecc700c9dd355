"""Start to ready: how long a registry takes from the exec of its command to its first answer on
`/v2/`, on a data folder that already holds a registry (issue 21: <= 0.3 s; Distribution about
0.04 s).

Each start is a new process of the same command as the benchmark's server (its flags and
environment), on a port of its own and a data folder of its own that one untimed start made;
`/v2/` is asked every 10 ms (any HTTP answer counts: 401 is ready too), then the process group
is stopped as `bench.servers.Server.stop` does.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from bench.servers import Dockyard, Server, free_port

POLL_SECONDS = 0.01
GIVE_UP_SECONDS = 60.0
STOP_WAIT_SECONDS = 15.0  # after SIGTERM, before SIGKILL
# Each start here is stopped a moment after its first answer, which used to leave a worker
# hanging until the server's shutdown timeout (30 s by default) killed it, past this
# stopper's wait (fixed: `dockyard.cli.early_stop`, tests/robustness/test_early_stop.py).
# Nothing is in progress to wait for and the timed part (start to ready) does not depend on
# it, so the timeout stays short: a return of that hang costs a second a start, not 15.
SHUTDOWN_TIMEOUT_SECONDS = 1


def twin(server: Server, workdir: Path, extra_args: tuple[str, ...] = ()) -> Server:
    """A server started like `server`, in `workdir`, on another port; not started."""
    changes: dict[str, object] = {"workdir": workdir, "port": free_port(), "proc": None}
    if isinstance(server, Dockyard):
        changes["extra_args"] = (*server.extra_args, *extra_args)
        changes["extra_env"] = {
            **server.extra_env,
            "DOCKYARD_SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT_SECONDS),
        }
    return dataclasses.replace(server, **changes)  # type: ignore[type-var]


def _answers(port: int) -> bool:
    """Whether an HTTP server answers `GET /v2/` on the port (any status)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return conn.recv(16).startswith(b"HTTP/")
    except OSError:
        return False


def seconds_to_ready(server: Server) -> float:
    """Exec the server's command, return the seconds until `/v2/` answered, stop it."""
    server.workdir.mkdir(parents=True, exist_ok=True)
    command, env = server.command(), server.env()
    with open(server.log_path, "ab") as log:
        started = time.perf_counter()
        server.proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    try:
        while not _answers(server.port):
            if server.proc.poll() is not None:
                raise RuntimeError(f"{server.title} exited at start:\n{server.log_tail()}")
            if time.perf_counter() - started > GIVE_UP_SECONDS:
                raise RuntimeError(f"{server.title} did not answer:\n{server.log_tail()}")
            time.sleep(POLL_SECONDS)
        return time.perf_counter() - started
    finally:
        _stop(server)


def _stop(server: Server) -> None:
    proc = server.proc
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(STOP_WAIT_SECONDS)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        # A server stopped while still starting its workers may not finish its shutdown.
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
