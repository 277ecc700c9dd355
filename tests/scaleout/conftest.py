"""Shared infrastructure for scale-out tests: one SeaweedFS (real S3) and one PostgreSQL."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresCluster
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedS3
from tests.support.server import RunningRegistry, free_port


@pytest.fixture(scope="session")
def s3_server() -> Iterator[SeaweedS3]:
    server = SeaweedS3(Path(tempfile.mkdtemp(prefix="dockyard-s3-"))).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def shared_backends(s3_server: SeaweedS3, pg_cluster: PostgresCluster) -> dict[str, str]:
    """Settings (as DOCKYARD_* variables) for a fresh bucket and database."""
    return {
        "DOCKYARD_STORAGE": f"s3://{s3_server.create_bucket()}/registry",
        "DOCKYARD_S3_ENDPOINT": s3_server.endpoint,
        "DOCKYARD_S3_PATH_STYLE": "true",
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "DOCKYARD_METADATA": pg_cluster.create_database(),
    }


@pytest.fixture
def replicas(shared_backends: dict[str, str], tmp_path: Path
             ) -> Iterator[Callable[..., RunningRegistry]]:
    """`start(*args)`: another replica on the same bucket and database (own data folder)."""
    started: list[RunningRegistry] = []

    def start(*args: str, env: dict[str, str] | None = None) -> RunningRegistry:
        server = RunningRegistry(data_dir=tmp_path / f"replica{len(started)}", port=free_port(),
                                 args=args, env={**shared_backends, **(env or {})},
                                 log_dir=tmp_path).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
