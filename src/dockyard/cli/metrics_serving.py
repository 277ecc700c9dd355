"""What the serving process does for metrics before its workers start: the folder where every
worker writes its series, and the optional `--metrics-listen` listener.

The folder is this server's own (`DATA/metrics/HOST-PORT`: only one server listens on a
host's port, `serve.claim_address`), private (0700), and emptied at every start: a server
that starts again starts its counters at zero, which Prometheus reads as a restart, rather
than adding the files of processes that no longer exist to those of new ones.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import socket
import sys
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
    folder = metrics_folder(settings)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, mode=0o700, exist_ok=True)
    os.chmod(folder.parent, 0o700)
    os.chmod(folder, 0o700)
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
