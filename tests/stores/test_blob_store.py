"""The blob store contract, run against every backend."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def test_upload_commit_read_delete(blob_store, run) -> None:
    data = b"hello, blob store" * 1000
    digest = digest_of(data)
    upload = uuid.uuid4().hex
    run(blob_store.create_upload(upload))
    assert run(blob_store.upload_size(upload)) == 0
    size = run(blob_store.write_upload(upload, 0, chunks(data[:100], data[100:5000])))
    assert size == 5000
    size = run(blob_store.write_upload(upload, 5000, chunks(data[5000:])))
    assert size == len(data) == run(blob_store.upload_size(upload))
    assert run(collect(blob_store.read_upload(upload))) == data
    assert run(blob_store.stat(digest)) is None, "not visible before commit"
    run(blob_store.commit_upload(upload, digest))
    assert run(blob_store.stat(digest)) == len(data)
    assert run(collect(blob_store.read(digest))) == data
    assert run(collect(blob_store.read(digest, 10, 19))) == data[10:20]
    assert run(blob_store.upload_size(upload)) is None, "the upload is consumed by commit"

    async def listed() -> list[str]:
        return [d async for d in blob_store.iter_digests()]

    assert digest in run(listed())
    run(blob_store.delete(digest))
    assert run(blob_store.stat(digest)) is None
    run(blob_store.delete(digest))  # absent is not an error


def test_rewrite_from_an_offset_drops_the_tail(blob_store, run) -> None:
    upload = uuid.uuid4().hex
    run(blob_store.create_upload(upload))
    run(blob_store.write_upload(upload, 0, chunks(b"abcdef")))
    assert run(blob_store.write_upload(upload, 3, chunks(b"XY"))) == 5
    assert run(collect(blob_store.read_upload(upload))) == b"abcXY"
    run(blob_store.abort_upload(upload))
    assert run(blob_store.upload_size(upload)) is None
    run(blob_store.abort_upload(upload))


def test_interrupted_write_counts_for_nothing(blob_store, run) -> None:
    upload = uuid.uuid4().hex
    run(blob_store.create_upload(upload))
    run(blob_store.write_upload(upload, 0, chunks(b"kept")))

    async def broken() -> AsyncIterator[bytes]:
        yield b"lost"
        raise ConnectionError("client went away")

    with pytest.raises(ConnectionError):
        run(blob_store.write_upload(upload, 4, broken()))
    assert run(blob_store.upload_size(upload)) == 4


def test_put_get_and_double_commit(blob_store, run) -> None:
    data = b'{"small": "manifest"}'
    run(blob_store.put(digest_of(data), data))
    run(blob_store.put(digest_of(data), data))
    assert run(blob_store.get(digest_of(data))) == data
    assert run(blob_store.get(digest_of(b"absent"))) is None
    for _ in range(2):  # the same content committed twice (two concurrent uploads)
        upload = uuid.uuid4().hex
        run(blob_store.create_upload(upload))
        run(blob_store.write_upload(upload, 0, chunks(b"same")))
        run(blob_store.commit_upload(upload, digest_of(b"same")))
    assert run(blob_store.get(digest_of(b"same"))) == b"same"


def test_hostile_ids_never_become_paths(blob_store, run) -> None:
    for bad in ("../../etc/passwd", "..", "/abs", "x" * 32):
        with pytest.raises((ValueError, KeyError)):
            run(blob_store.create_upload(bad))
    with pytest.raises(Exception) as info:
        run(blob_store.stat("sha256:../../etc"))
    assert "digest" in str(info.value).lower()


def test_leaves_no_files_behind(blob_store, run, tmp_path) -> None:
    upload = uuid.uuid4().hex
    run(blob_store.create_upload(upload))
    run(blob_store.write_upload(upload, 0, chunks(b"temporary")))
    run(blob_store.abort_upload(upload))
    data = b"x"
    run(blob_store.put(digest_of(data), data))
    run(blob_store.delete(digest_of(data)))

    async def listed() -> list[str]:
        return [d async for d in blob_store.iter_digests()]

    assert run(listed()) == []
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == [], leftovers
