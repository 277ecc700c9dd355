"""The benchmark's process plumbing under a loaded machine: a server whose free port was taken
before it bound it is started again on another port, never mistaken for the port's owner; and
wrk stopped by SIGINT is never stopped before it listens for SIGINT (it then died with no
report: `wrk exited -2`)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from bench.load import WrkUntilStopped
from bench.ops import BenchError
from bench.servers import Distribution, Server, find_binary


def _distribution(workdir: Path) -> Server:
    return Distribution(key="distribution", title="Distribution", workdir=workdir)


class _Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_server_whose_port_was_taken_starts_on_another(tmp_path: Path) -> None:
    # Another program answers `/v2/` on the port the server was given, as a registry would.
    other = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    port = other.server_address[1]
    server = _distribution(tmp_path)
    server.port = port
    try:
        server.start()
        assert server.port != port
        assert server.proc is not None and server.proc.poll() is None
        assert server.listens()
        assert httpx.get(server.url + "/v2/", timeout=5).status_code == 200
    finally:
        server.stop()
        other.shutdown()
        other.server_close()


def test_wrk_is_interrupted_only_once_it_can_report(tmp_path: Path) -> None:
    server = _distribution(tmp_path)
    server.start()
    try:
        find_binary("wrk")
        for _ in range(5):
            # Left at once, as a collection that ends before wrk is under way leaves it.
            try:
                with WrkUntilStopped(server.url + "/v2/", connections=2, threads=1):
                    pass
            except BenchError as exc:  # a report of no requests is fair; dying unheard is not
                assert "wrk exited" not in str(exc), exc
    finally:
        server.stop()
