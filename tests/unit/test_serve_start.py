"""What `dockyard serve`'s granian server does when it starts, before its first worker."""

from __future__ import annotations

from pathlib import Path

from granian import Granian

from dockyard.cli import serve
from dockyard.config import Settings


def test_granian_alone_reads_every_process_memory_at_start() -> None:
    # The premise: granian's process server makes its RSS collector (a pass over /proc) in
    # the step that writes its pid file, whether or not an RSS limit was set.
    server = Granian("dockyard.api.app:app_from_environment", factory=True)
    server._write_pidfile()
    assert getattr(server, "_rss_collector", None) is not None


def test_the_server_makes_no_memory_collector_it_would_not_use(tmp_path: Path) -> None:
    settings = Settings(listen="127.0.0.1:5000", data_dir=tmp_path / "data")
    server = serve.http_server(settings, workers=2)
    assert server.workers_rss is None
    server._write_pidfile()
    assert getattr(server, "_rss_collector", None) is None


def test_a_pid_file_is_still_written(tmp_path: Path) -> None:
    settings = Settings(listen="127.0.0.1:5000", data_dir=tmp_path / "data")
    server = serve.http_server(settings, workers=1)
    server.pid_file = tmp_path / "granian.pid"
    server.pid = 4242
    server._write_pidfile()
    assert (tmp_path / "granian.pid").read_text().strip() == "4242"


def test_request_bodies_reach_the_app_in_pieces_of_a_mebibyte(tmp_path: Path) -> None:
    """granian reads a body from the socket into a buffer of at most `max_buffer_size` and
    hands each read to the app as one piece: its default (about 400 KiB) cut a large push
    into pieces each paying a hop between threads, a copy into Python and the GIL changing
    hands several times (bench/README.md)."""
    settings = Settings(listen="127.0.0.1:5000", data_dir=tmp_path / "data")
    server = serve.http_server(settings, workers=1)
    assert server.http1_settings is not None
    assert server.http1_settings.max_buffer_size == serve.RECEIVE_BUFFER == 1024 * 1024
    assert server.http1_settings.header_read_timeout == int(settings.header_timeout_seconds * 1000)
