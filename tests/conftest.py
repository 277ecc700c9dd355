"""Shared fixtures: real `dockyard serve` processes on free ports, and an HTTP client for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningRegistry, free_port


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """One registry shared by the whole session; tests use their own repository names."""
    base = tmp_path_factory.mktemp("registry")
    server = RunningRegistry(data_dir=base / "data", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def start_registry(tmp_path: Path) -> Iterator[Callable[..., RunningRegistry]]:
    """Start a private registry with extra `serve` arguments; stopped at test end."""
    started: list[RunningRegistry] = []

    def start(*args: str, data_dir: Path | None = None, env: dict[str, str] | None = None,
              port: int | None = None) -> RunningRegistry:
        server = RunningRegistry(
            data_dir=data_dir or tmp_path / f"data{len(started)}",
            port=port or free_port(), args=args, env=env or {}, log_dir=tmp_path,
        ).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def client(registry: RunningRegistry) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=60.0) as c:
        yield c
