"""Every backend of an interface runs the same conformance tests; new backends join the params."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.metadata.sql import SQLMetadataStore
from dockyard.storage.filesystem import FilesystemBlobStore


@pytest.fixture
def run() -> Iterator:
    loop = asyncio.new_event_loop()
    yield loop.run_until_complete
    loop.close()


@pytest.fixture(params=["filesystem"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "filesystem":
        yield FilesystemBlobStore(tmp_path / "blobs")


@pytest.fixture(params=["sqlite"])
def meta(request: pytest.FixtureRequest, tmp_path: Path, run):
    if request.param == "sqlite":
        store = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    yield store
    run(store.close())
