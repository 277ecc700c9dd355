"""Starting an upload: the record and the store's file are made at the same time, off the
event loop, and whichever of the two fails, the other is undone."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from dockyard.metadata import schema as t
from dockyard.metadata import uploads as upload_queries
from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.uploads import UploadService
from dockyard.storage.filesystem import FilesystemBlobStore

# Generous: the CI machine runs three test processes, servers and peers on two cores.
PATIENCE_SECONDS = 60


@pytest.fixture
def service(tmp_path: Path, run):
    meta = SQLMetadataStore.open_sqlite(tmp_path / "meta.db")
    blobs = FilesystemBlobStore(tmp_path / "data")
    yield UploadService(blobs, meta, ttl_seconds=3600)
    run(meta.close())


def upload_rows(path: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.uploads)).scalar_one())
    finally:
        engine.dispose()


def test_the_upload_file_is_made_while_the_record_is_written(
    service, run, monkeypatch, tmp_path
) -> None:
    """The record's write waits (in its own thread) until the store's file exists: it can only
    finish when both are under way at once, not one after the other."""
    real = upload_queries.create_upload
    uploads = tmp_path / "data" / "uploads"

    def waiting(conn, ids, upload_id, repository, now):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + PATIENCE_SECONDS
        while not (uploads / upload_id).exists():
            assert time.monotonic() < deadline, "the file was made only after the record"
            time.sleep(0.005)
        real(conn, ids, upload_id, repository, now)

    monkeypatch.setattr(upload_queries, "create_upload", waiting)
    status = run(service.start("start/overlap"))
    assert (uploads / status.id).exists()
    assert run(service.status("start/overlap", status.id)).size == 0


def test_the_upload_file_is_made_off_the_event_loop(service, run, monkeypatch, tmp_path) -> None:
    """Making a file waits for the file system's journal; the event loop must not."""
    loop_thread = threading.get_ident()
    made_in: list[int] = []
    real_open = os.open
    uploads = str(tmp_path / "data" / "uploads")

    def recording(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path).startswith(uploads) and flags & os.O_CREAT:
            made_in.append(threading.get_ident())
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording)
    for _ in range(3):
        run(service.start("start/off-loop"))
    assert len(made_in) == 3
    assert loop_thread not in made_in


def test_a_file_that_cannot_be_made_leaves_no_record(service, run, tmp_path) -> None:
    (tmp_path / "data" / "uploads").rmdir()  # every new upload file now fails
    with pytest.raises(FileNotFoundError):
        run(service.start("start/no-file"))
    assert upload_rows(tmp_path / "meta.db") == 0


def test_a_record_that_cannot_be_written_leaves_no_file(service, run, tmp_path) -> None:
    run(service.meta.close())  # every write now fails: the store is closed
    with pytest.raises(RuntimeError):
        run(service.start("start/no-record"))
    assert list((tmp_path / "data" / "uploads").iterdir()) == []
    assert upload_rows(tmp_path / "meta.db") == 0
