"""The listings benchmark's client (`bench.rawhttp.Listing`): plain HTTP/1.1 on one keep-alive
connection, following Link to the end and reading bodies sent whole or in chunks (Go's
net/http, so Distribution, chunks a long answer), and the benchmark timing its listings with it
rather than with httpx, whose own cost a request was as large as a listing page's round trip."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench.payload import Pool
from bench.servers import Dockyard
from bench.suite import Config, Listings

from bench import rawhttp

NAMES = [f"repo-{i:03d}" for i in range(25)]


class _Pages(http.server.BaseHTTPRequestHandler):
    """`/list?last=&n=` pages of NAMES with a Link to the next; even pages chunked in pieces of
    a few bytes, odd ones with a Content-Length."""

    protocol_version = "HTTP/1.1"
    connections: list[tuple[str, int]] = []

    def setup(self) -> None:
        super().setup()
        _Pages.connections.append(self.client_address)

    def do_GET(self) -> None:
        query = dict(p.split("=") for p in self.path.partition("?")[2].split("&") if p)
        n, last = int(query.get("n", "10")), query.get("last")
        start = NAMES.index(last) + 1 if last else 0
        page = NAMES[start : start + n]
        body = json.dumps({"repositories": page}).encode()
        self.send_response(200)
        if start + n < len(NAMES):
            self.send_header("Link", f'</list?last={page[-1]}&n={n}>; rel="next"')
        if (start // n) % 2 == 0:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 7):
                piece = body[i : i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def pages_server() -> Iterator[str]:
    _Pages.connections = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_listing_follows_link_on_one_connection_through_chunked_and_sized_pages(
    pages_server: str,
) -> None:
    times: list[float] = []
    with rawhttp.Listing(pages_server) as conn:
        bodies = conn.pages("/list?n=10", max_pages=5, times=times)
        again = conn.pages("/list?n=10", max_pages=5)
    names = [name for body in bodies for name in json.loads(body)["repositories"]]
    assert names == NAMES
    assert again == bodies
    assert len(bodies) == len(times) == 3
    assert len(_Pages.connections) == 1  # both walks, every page: one keep-alive connection


def test_a_listing_longer_than_its_page_limit_is_an_error(pages_server: str) -> None:
    with rawhttp.Listing(pages_server) as conn, pytest.raises(rawhttp.HTTPError):
        conn.pages("/list?n=10", max_pages=1)


def test_the_asyncio_connection_reads_a_body_of_many_chunks(pages_server: str) -> None:
    async def first_page() -> bytes:
        conn = await rawhttp.Connection(pages_server).open()
        try:
            status, _, content = await conn.request("GET", "/list?n=10")
        finally:
            await conn.close()
        assert status == 200
        return content

    assert json.loads(asyncio.run(first_page())) == {"repositories": NAMES[:10]}


def test_the_listings_benchmark_times_without_httpx(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = Config(rounds=1, tags=12, repos=5, page=5, list_iterations=1, setup_workers=2)
    server = Dockyard("dockyard", "Dockyard", tmp_path, extra_env={"DOCKYARD_UI": "false"})
    server.start()
    try:
        bench = Listings(config, Pool(1))
        bench.setup(server)  # untimed, through httpx

        def no_httpx(*args: object, **kwargs: object) -> httpx.Response:
            raise AssertionError("a timed listing went through httpx")

        monkeypatch.setattr(httpx.Client, "send", no_httpx)
        figures = bench.run(server, 1)
    finally:
        server.stop()
    assert set(figures) == {m.key for m in Listings.metrics}
    assert all(value > 0 for value in figures.values())
    assert bench.state["dockyard"] == {"tag_pages": 3, "catalog_pages": 1}
