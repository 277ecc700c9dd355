"""HEAD's load generator (`bench.load.run_ab`): ApacheBench on kept-alive connections, against a
small server of the test's own. A server that closes each connection, or answers other than 2xx,
makes the figure an error instead of a number that measures something else."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from bench.ops import BenchError

from bench import load


class Answers(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    status = 200
    keep = True
    connections: set[int] = set()
    url = ""

    def do_HEAD(self) -> None:
        type(self).connections.add(self.client_address[1])
        self.send_response(self.status)
        # A HEAD's Content-Length announces the body a GET would have: none follows.
        self.send_header("Content-Length", "1234")
        self.send_header("Connection", "keep-alive" if self.keep else "close")
        self.end_headers()
        self.close_connection = not self.keep

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[type[Answers]]:
    class Handler(Answers):
        connections: set[int] = set()  # this test's own, apart from the others

    handler = Handler
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/v2/x/blobs/y"
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


def test_heads_go_on_kept_connections(serve: type[Answers]) -> None:
    result = load.run_ab(serve.url, connections=4, seconds=1)
    assert result.requests > 50
    assert result.non_2xx == 0
    assert 0 < result.p50_ms <= result.p99_ms
    assert len(serve.connections) <= 4  # no request waited for a body, none reconnected


def test_a_server_that_closes_each_connection_gives_no_figure(serve: type[Answers]) -> None:
    serve.keep = False
    with pytest.raises(BenchError, match="errors"):
        load.run_ab(serve.url, connections=2, seconds=1)


def test_answers_other_than_2xx_give_no_figure(serve: type[Answers]) -> None:
    serve.status = 404
    with pytest.raises(BenchError, match="non-2xx"):
        load.run_ab(serve.url, connections=2, seconds=1)
