"""Replicas sharing one S3 bucket and one PostgreSQL database (fixtures in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import s3_postgres_env
from tests.support.postgres import PostgresCluster
from tests.support.redis_server import RedisServer
from tests.support.seaweedfs import SeaweedS3
from tests.support.server import RunningRegistry, free_port


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def shared_backends(s3_server: SeaweedS3, pg_cluster: PostgresCluster) -> dict[str, str]:
    return s3_postgres_env(s3_server, pg_cluster, redirect=True)


@pytest.fixture
def replicas(
    shared_backends: dict[str, str], tmp_path: Path
) -> Iterator[Callable[..., RunningRegistry]]:
    """`start(*args)`: another replica on the same bucket and database (own data folder)."""
    started: list[RunningRegistry] = []

    def start(*args: str, env: dict[str, str] | None = None) -> RunningRegistry:
        server = RunningRegistry(
            data_dir=tmp_path / f"replica{len(started)}",
            port=free_port(),
            args=args,
            env={**shared_backends, **(env or {})},
            log_dir=tmp_path,
        ).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
