"""Every backend of an interface runs the same conformance tests; new backends join the params."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.registry import migrate
from dockyard.storage.filesystem import FilesystemBlobStore
from dockyard.storage.s3 import S3BlobStore
from tests.support.postgres import PostgresCluster
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedS3


@pytest.fixture
def run() -> Iterator:
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()


@pytest.fixture(scope="session")
def seaweed(s3_server: SeaweedS3) -> SeaweedS3:
    """The session's one SeaweedFS (tests/conftest.py), shared with the server tests."""
    return s3_server


@pytest.fixture(params=["filesystem", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "filesystem":
        yield FilesystemBlobStore(tmp_path / "blobs")
    else:
        s3 = request.getfixturevalue("seaweed")
        yield S3BlobStore.from_url(
            f"s3://{s3.create_bucket()}/some/prefix",
            endpoint=s3.endpoint,
            region="us-east-1",
            path_style=True,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            presign_seconds=600,
        )


@pytest.fixture(scope="session")
def postgres(pg_cluster: PostgresCluster) -> PostgresCluster:
    """The session's one PostgreSQL cluster (tests/conftest.py), shared with the server tests."""
    return pg_cluster


@pytest.fixture(scope="session")
def migrated_template(postgres: PostgresCluster) -> str:
    """The name of a database migrated once to the schema's head, which `meta` copies for each
    test: a copy is a fraction of a migration's work, and each of the PostgreSQL tests did one.
    Nothing connects to it after (PostgreSQL copies only a database nobody is connected to)."""
    url = postgres.create_database()

    async def migrated() -> None:
        store = SQLMetadataStore.open_postgres(url)
        try:
            await migrate(store)
        finally:
            await store.close()

    asyncio.run(migrated())
    return url.rsplit("/", 1)[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def meta(request: pytest.FixtureRequest, tmp_path: Path, run):
    if request.param == "sqlite":
        store = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    else:
        template = request.getfixturevalue("migrated_template")
        store = SQLMetadataStore.open_postgres(
            request.getfixturevalue("postgres").create_database(template=template)
        )
    yield store
    run(store.close())
