"""What the serving process does for metrics before its workers start: the folder where every
worker writes its series, and the optional `--metrics-listen` listener.

The folder is this server's own, private (0700), and new at every start: a server that starts
again starts its counters at zero, which Prometheus reads as a restart, rather than adding the
files of processes that no longer exist to those of new ones. It lives in memory (a new folder
in /dev/shm, else the system's temporary folder), never on the data folder's disk: the library
keeps each worker's values in memory-mapped files whose pages the file system gives only when
first written, so on a full disk a worker writing a series it had not written before was
killed by SIGBUS, and every worker respawned after it, until the server gave up. The data
folder keeps a link to it (`DATA/metrics/HOST-PORT`: only one server listens on a host's
port, `serve.claim_address`), for operators and tests to find.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from dockyard.cli.exits import FAILED, USAGE, fail
from dockyard.config import Settings, split_listen
from dockyard.service.metrics import CONTENT_TYPE, MULTIPROCESS_ENV, SERVER_PID_ENV, exposition

log = logging.getLogger("dockyard")


def metrics_folder(settings: Settings) -> Path:
    return settings.data_dir / "metrics" / f"{socket.gethostname()}-{settings.port}"


@contextlib.contextmanager
def metrics_for_workers(settings: Settings) -> Iterator[None]:
    """Set up the workers' shared folder (and the separate listener) for as long as the
    server runs; remove the folder when it stops."""
    if not settings.metrics:
        yield
        return
    if "prometheus_client.values" in sys.modules:
        # The library chose its value store at import, before the folder was set: each
        # worker would count alone and a scrape would see one of them.
        raise RuntimeError("prometheus_client was imported before the metrics folder was set")
    link = metrics_folder(settings)
    _forget(link)
    link.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    os.chmod(link.parent, 0o700)
    folder = Path(tempfile.mkdtemp(prefix="dockyard-metrics-", dir=_memory_dir()))  # 0700
    try:
        link.symlink_to(folder, target_is_directory=True)
    except OSError as exc:  # a full disk at start: the metrics work without their link
        log.warning("could not link %s to the metrics folder %s: %s", link, folder, exc)
    os.environ[MULTIPROCESS_ENV] = str(folder)
    os.environ[SERVER_PID_ENV] = str(os.getpid())
    # Loaded here, before the workers are forked, so that they share its memory (about
    # 14 MiB a process when each loaded it itself); each worker then writes files of its own.
    import prometheus_client.multiprocess  # noqa: F401

    listener = None
    try:
        if settings.metrics_listen:
            listener = start_listener(settings)
        yield
    finally:
        if listener is not None:
            listener.shutdown()
            listener.server_close()
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            link.unlink()


def _memory_dir() -> str | None:
    """Where the metrics folder is made: a file system in memory if there is one."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return None  # the system's temporary folder


def _forget(link: Path) -> None:
    """Remove what an earlier server on this address left: its link and, if that server was
    killed before it could, the folder in memory the link names (only one of our own)."""
    if link.is_symlink():
        target = Path(os.readlink(link))
        ours = target.name.startswith("dockyard-metrics-") and not target.is_symlink()
        if ours and target.is_dir() and target.stat().st_uid == os.getuid():
            shutil.rmtree(target, ignore_errors=True)
        link.unlink()
    elif link.exists():  # a folder, as servers before this one kept it
        shutil.rmtree(link, ignore_errors=True)


class _MetricsHandler(BaseHTTPRequestHandler):
    """GET /metrics, nothing else; no log line per scrape."""

    listen_port = 0

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] != "/metrics":
            self._answer(404, b"not found: this listener serves /metrics\n", "text/plain")
            return
        self._answer(200, exposition(self.listen_port), CONTENT_TYPE)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _ThreadingHTTPServer6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def start_listener(settings: Settings) -> ThreadingHTTPServer:
    """Serve /metrics on `metrics_listen` from a thread of the serving process (which adds
    up the workers' files like any worker would), without authentication."""
    assert settings.metrics_listen is not None
    host, port = split_listen(settings.metrics_listen)
    if port == settings.port:
        raise fail("metrics_listen needs a port of its own, not the listen port", USAGE)
    handler = type("Handler", (_MetricsHandler,), {"listen_port": settings.port})
    server_class: type[ThreadingHTTPServer] = ThreadingHTTPServer
    if ":" in host:
        server_class = _ThreadingHTTPServer6
    try:
        server = server_class((host, port), handler)
    except OSError as exc:
        shown = f"[{host}]" if ":" in host else host
        raise fail(
            f"cannot listen on {shown}:{port} for metrics: {exc.strerror or exc}", FAILED
        ) from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics served without authentication on http://%s/metrics", settings.metrics_listen)
    if _public(host):
        log.warning(
            "metrics_listen %s is reachable beyond this machine's private networks, and "
            "serves /metrics without authentication: bind it to loopback or a private address",
            settings.metrics_listen,
        )
    return server


def _public(host: str) -> bool:
    """Every interface, or an address routed on the internet (a name is taken as given)."""
    if host in ("", "0.0.0.0", "::"):
        return True
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return False
