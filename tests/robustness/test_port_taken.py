"""The tests' servers on a busy machine: a port picked free and taken by another program
before the server bound it costs a second start on another port, not a failed test (CI: a
scale-out test's server exited 'the address is already in use'). A server asked for one
port keeps to it."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningRegistry


def test_a_server_free_to_take_any_port_starts_on_another(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = RunningRegistry(data_dir=tmp_path / "data", port=port, any_port=True).start()
        try:
            assert server.port != port
            assert httpx.get(server.url + "/v2/", timeout=10).status_code == 200
        finally:
            server.stop()


def test_a_server_asked_for_one_port_keeps_to_it(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = RunningRegistry(data_dir=tmp_path / "data", port=port)
        with pytest.raises(RuntimeError, match="exited"):
            server.start()
        assert server.port == port and "already in use" in server.log()
