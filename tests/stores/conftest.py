"""Every backend of an interface runs the same conformance tests; new backends join the params."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.registry import migrate
from dockyard.storage.filesystem import FilesystemBlobStore
from tests.support.postgres import PostgresCluster


@pytest.fixture
def run() -> Iterator:
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()


@pytest.fixture(params=["filesystem"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "filesystem":
        yield FilesystemBlobStore(tmp_path / "blobs")


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresCluster]:
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def meta(request: pytest.FixtureRequest, tmp_path: Path, run):
    if request.param == "sqlite":
        store = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    else:
        url = request.getfixturevalue("postgres").create_database()
        store = SQLMetadataStore.open_postgres(url)
        run(migrate(store))
    yield store
    run(store.close())
