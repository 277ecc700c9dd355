"""A small blob sent whole with the PUT that closes its upload (how a small image's config and
layers arrive) is written, synced and published in one hop to a worker thread, with one open of
the upload file for the write: the streamed path took two hops and opened it twice more."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.uploads import SMALL_BODY, UploadService
from dockyard.storage.filesystem import FilesystemBlobStore


async def _body(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _push(tmp_path: Path, data: bytes, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    meta = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    store = FilesystemBlobStore(tmp_path / "blobs")
    service = UploadService(store, meta, ttl_seconds=3600)
    try:
        status = await service.start("team/app")
        upload_file = str(tmp_path / "blobs" / "uploads" / status.id)
        counts = {"hops": 0, "opens": 0, "fsyncs": 0}
        loop = asyncio.get_running_loop()
        real_hop, real_open, real_fsync = loop.run_in_executor, os.open, os.fsync

        def hop(*args: Any) -> Any:
            counts["hops"] += 1
            return real_hop(*args)

        def opened(path: Any, *args: Any, **kwargs: Any) -> int:
            counts["opens"] += str(path) == upload_file
            return real_open(path, *args, **kwargs)

        def synced(fd: int) -> None:
            counts["fsyncs"] += 1
            real_fsync(fd)

        monkeypatch.setattr(loop, "run_in_executor", hop)
        monkeypatch.setattr("dockyard.storage.filesystem.os.open", opened)
        monkeypatch.setattr("dockyard.storage.filesystem.os.fsync", synced)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        # Its folder made beforehand: the first blob of a folder also syncs the folder's own.
        (tmp_path / "blobs" / "blobs" / "sha256" / digest[7:9]).mkdir(parents=True)
        half = len(data) // 2
        assert await service.finish("team/app", status.id, digest, _body(data[:half], data[half:]))
        monkeypatch.undo()
        assert await store.get(digest) == data
        assert await meta.linked_blob_size("team/app", digest) == len(data)
        return counts
    finally:
        await meta.close()


def test_a_small_blob_is_published_in_one_hop(tmp_path: Path, monkeypatch) -> None:
    counts = asyncio.run(_push(tmp_path, os.urandom(4096), monkeypatch))
    # The hold on the upload opens it once, the write and commit once; the blob and its
    # folder are synced as before (nothing acknowledged rests on unsynced bytes).
    assert counts == {"hops": 1, "opens": 2, "fsyncs": 2}


def test_a_larger_blob_is_still_streamed(tmp_path: Path, monkeypatch) -> None:
    counts = asyncio.run(_push(tmp_path, os.urandom(SMALL_BODY + 1), monkeypatch))
    # A streamed batch is hashed and written by two threads at once, then committed.
    assert counts["hops"] == 3 and counts["fsyncs"] == 2
