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
