"""The blob store contract, run against every backend."""

from __future__ import annotations

import hashlib
import os
import time
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


def upload_in_pieces(store, run, data: bytes, sizes) -> str:  # type: ignore[no-untyped-def]
    """A new upload holding `data`, written by one write_upload call per piece size."""
    upload = uuid.uuid4().hex
    run(store.create_upload(upload))
    offset = 0
    for size in sizes:
        offset = run(store.write_upload(upload, offset, chunks(data[offset : offset + size])))
    return upload


def seaweed_store(seaweed, prefix: str = ""):  # type: ignore[no-untyped-def]
    from dockyard.storage.s3 import S3BlobStore
    from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY

    return S3BlobStore.from_url(
        f"s3://{seaweed.create_bucket()}{prefix}",
        endpoint=seaweed.endpoint,
        region="us-east-1",
        path_style=True,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        presign_seconds=None,
    )


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


def test_remove_many_removes_what_is_there_and_answers_its_sizes(blob_store, run) -> None:
    kept, gone = [os.urandom(n) for n in (10, 2000)], [os.urandom(n) for n in range(1, 40)]
    for data in kept + gone:
        run(blob_store.put(digest_of(data), data))
    absent = digest_of(b"never stored")
    asked = [digest_of(d) for d in gone] + [absent]
    removed = run(blob_store.remove_many(asked))
    assert removed == {digest_of(d): len(d) for d in gone}
    for data in gone:
        assert run(blob_store.stat(digest_of(data))) is None
    for data in kept:
        assert run(blob_store.get(digest_of(data))) == data
    assert run(blob_store.remove_many(asked)) == {}  # a second pass finds nothing
    assert run(blob_store.remove_many([])) == {}
    one = os.urandom(5)  # fewer than the threads a store may share the removals among
    run(blob_store.put(digest_of(one), one))
    assert run(blob_store.remove_many([digest_of(one)])) == {digest_of(one): 5}
    assert run(blob_store.stat(digest_of(one))) is None


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


MiB = 1024 * 1024


@pytest.mark.parametrize(
    "sizes",
    [
        (6 * MiB, 1 * MiB, 2 * MiB, 7 * MiB, 3 * MiB),  # small pieces gathered between big ones
        (1 * MiB, 12 * MiB),  # a small first piece takes the head of the big one
        (2 * MiB, 2 * MiB, 1),  # nothing reaches the minimum part size
    ],
)
def test_an_upload_of_many_pieces_commits_byte_exact(blob_store, run, sizes) -> None:
    import os

    data = os.urandom(sum(sizes))
    digest = digest_of(data)
    upload = upload_in_pieces(blob_store, run, data, sizes)
    run(blob_store.commit_upload(upload, digest))
    assert run(blob_store.stat(digest)) == len(data)
    assert run(collect(blob_store.read(digest))) == data
    assert run(blob_store.upload_size(upload)) is None


def test_s3_assembles_pieces_with_server_side_part_copies(seaweed, run) -> None:
    """The committed object is a multipart object (its ETag counts the parts) built without
    the registry sending the big pieces again: only the gathered small ones are uploaded."""
    import os

    import obstore

    from dockyard.storage import s3_multipart

    store = seaweed_store(seaweed, "/p")
    assert store.multipart is not None
    uploaded: list[int] = []
    original = s3_multipart.MultipartClient.put_part

    async def counting_put_part(self, key, upload_id, number, data):  # type: ignore[no-untyped-def]
        uploaded.append(len(data))
        return await original(self, key, upload_id, number, data)

    sizes = (8 * MiB, 1 * MiB, 6 * MiB, 9 * MiB)
    data = os.urandom(sum(sizes))
    digest = digest_of(data)
    upload = upload_in_pieces(store, run, data, sizes)
    s3_multipart.MultipartClient.put_part = counting_put_part  # type: ignore[method-assign]
    try:
        run(store.commit_upload(upload, digest))
    finally:
        s3_multipart.MultipartClient.put_part = original  # type: ignore[method-assign]
    assert run(collect(store.read(digest))) == data

    async def head() -> dict:
        return await obstore.head_async(store.store, store._blob_key(digest))

    meta = run(head())
    assert str(meta["e_tag"]).strip('"').endswith("-4"), meta["e_tag"]
    # 8 MiB copied; 1 MiB + the head of the 6 MiB piece gathered into one 5 MiB part; the rest
    # of that piece (2 MiB) is under the minimum, so it is gathered with the head of the last
    # piece; the remaining 6 MiB of the last piece are copied.
    assert uploaded == [5 * MiB, 5 * MiB], uploaded


def test_s3_copies_a_piece_too_big_for_one_copy_in_ranges(seaweed, run, monkeypatch) -> None:
    """S3 copies at most 5 GiB at once: a bigger single piece is copied as ranged parts
    (here with the limit lowered to 8 MiB so the test stays small)."""
    import os

    import obstore

    from dockyard.storage import s3 as s3_module

    monkeypatch.setattr(s3_module, "COPY_PART", 8 * MiB)
    store = seaweed_store(seaweed)
    data = os.urandom(20 * MiB + 5)
    digest = digest_of(data)
    upload = uuid.uuid4().hex
    run(store.create_upload(upload))
    run(store.write_upload(upload, 0, chunks(data)))
    run(store.commit_upload(upload, digest))
    assert run(collect(store.read(digest))) == data

    async def head() -> dict:
        return await obstore.head_async(store.store, store._blob_key(digest))

    assert str(run(head())["e_tag"]).strip('"').endswith("-3")


def test_filesystem_reads_from_the_disk_off_the_event_loop(tmp_path, run, monkeypatch) -> None:
    """Warm bytes are read on the event loop (no thread hop per MiB); bytes the page cache does
    not hold are read in a worker thread, so a cold blob never stalls other requests."""
    import asyncio
    import os

    from dockyard.storage.filesystem import FilesystemBlobStore

    store = FilesystemBlobStore(tmp_path / "blobs")
    data = os.urandom(3 * 1024 * 1024 + 123)
    digest = digest_of(data)
    run(store.put(digest, data))
    hops: list[object] = []
    real = asyncio.to_thread

    async def counted(fn, *args):
        hops.append(fn)
        return await real(fn, *args)

    monkeypatch.setattr("dockyard.storage.filesystem.asyncio.to_thread", counted)
    path = store.local_path(digest)
    assert run(collect(store.read(digest))) == data
    assert hops == [], "cached bytes cost a thread hop"
    assert (
        run(collect(store.read(digest, 5, 2 * 1024 * 1024 + 9))) == data[5 : 2 * 1024 * 1024 + 10]
    )
    assert hops == []

    # The probe is a real read: on a miss the kernel may start reading ahead, so a later probe
    # can find the bytes cached. What must hold is that every read the probe calls cold goes to
    # a thread, and that a file dropped from the page cache is called cold.
    from dockyard.storage import filesystem

    probes: list[bool] = []
    real_cached = filesystem._cached

    def recorded(fd: int, offset: int) -> bool:
        probes.append(real_cached(fd, offset))
        return probes[-1]

    monkeypatch.setattr(filesystem, "_cached", recorded)
    for _ in range(30):
        fd = os.open(path, os.O_RDONLY)
        try:  # out of the page cache, without probing it
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        probes.clear()
        hops.clear()
        assert run(collect(store.read(digest))) == data
        if False in probes:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the kernel kept the file in its page cache")
    assert len(hops) == probes.count(False), "a read from the disk ran on the event loop"


@pytest.mark.parametrize("fsync", [True, False])
def test_filesystem_starts_writing_an_upload_back_as_it_arrives(
    tmp_path, run, monkeypatch, fsync
) -> None:
    """With fsync on, every written batch is handed to the disk at once (sync_file_range), so
    the fsync before the acknowledgement has little left; with fsync off, nothing is."""
    import os

    from dockyard.storage import filesystem

    assert filesystem._start_writeback is not None, "sync_file_range is on every Linux"
    ranges: list[tuple[int, int]] = []
    monkeypatch.setattr(
        filesystem, "_start_writeback", lambda fd, offset, length: ranges.append((offset, length))
    )
    store = filesystem.FilesystemBlobStore(tmp_path / "blobs", fsync=fsync)
    data = os.urandom(5 * filesystem.WRITE_BATCH + 77)
    upload = uuid.uuid4().hex
    run(store.create_upload(upload))
    pieces = [data[i : i + 300_000] for i in range(0, len(data), 300_000)]
    assert run(store.write_upload(upload, 0, chunks(*pieces))) == len(data)
    assert run(collect(store.read_upload(upload))) == data
    if not fsync:
        assert ranges == []
        return
    covered = 0
    for offset, length in ranges:
        assert offset == covered, "the ranges follow each other"
        covered += length
    assert covered == len(data) and len(ranges) > 1


def test_filesystem_truncates_an_upload_only_to_drop_bytes(tmp_path, run, monkeypatch) -> None:
    """ext4 flushes a file when it is closed after a truncation, even one to the length it
    already had: a chunk that continues an upload where its bytes end truncates nothing; one
    that starts before the end (after a chunk that failed) cuts the rest off."""
    import os

    from dockyard.storage.filesystem import FilesystemBlobStore

    store = FilesystemBlobStore(tmp_path / "blobs")
    cuts: list[int] = []
    real = os.ftruncate

    def recorded(fd: int, length: int) -> None:
        cuts.append(length)
        real(fd, length)

    monkeypatch.setattr("dockyard.storage.filesystem.os.ftruncate", recorded)
    upload = uuid.uuid4().hex
    run(store.create_upload(upload))
    assert run(store.write_upload(upload, 0, chunks(b"a" * 100))) == 100
    assert run(store.write_upload(upload, 100, chunks(b"b" * 50))) == 150
    assert cuts == []
    assert run(store.write_upload(upload, 120, chunks(b"c" * 10))) == 130
    assert cuts == [120]
    assert run(collect(store.read_upload(upload))) == b"a" * 100 + b"b" * 20 + b"c" * 10
    run(store.create_upload(upload))  # made again: empty, as a new upload is
    assert run(store.upload_size(upload)) == 0


def test_an_upload_can_be_followed_while_it_grows_where_the_store_says_so(blob_store, run) -> None:
    """What the pull-through cache asks of a store to hand one download to every worker:
    the upload's file while it arrives, the blob's once committed, and whether a descriptor
    it holds is the committed blob or a dropped upload. Stores without local files say so
    and answer None for both."""
    import os

    data = b"followed while it grows" * 100
    digest = digest_of(data)
    upload = uuid.uuid4().hex
    run(blob_store.create_upload(upload))
    run(blob_store.write_upload(upload, 0, chunks(data[:100])))
    following = blob_store.open_upload(upload)
    if not blob_store.follows_uploads:
        assert following is None and blob_store.open_blob(digest) is None
        run(blob_store.abort_upload(upload))
        return
    assert following is not None and blob_store.open_blob(digest) is None
    try:
        run(blob_store.write_upload(upload, 100, chunks(data[100:])))
        assert os.pread(following, len(data), 0) == data
        assert not blob_store.superseded(following, digest), "nothing committed yet"
        run(blob_store.commit_upload(upload, digest))
        assert blob_store.open_upload(upload) is None
        assert not blob_store.superseded(following, digest), "it became the blob"
        dropped = uuid.uuid4().hex
        run(blob_store.create_upload(dropped))
        stale = blob_store.open_upload(dropped)
        assert stale is not None
        run(blob_store.abort_upload(dropped))
        assert blob_store.superseded(stale, digest)
        os.close(stale)
        committed = blob_store.open_blob(digest)
        assert committed is not None and os.pread(committed, len(data), 0) == data
        os.close(committed)
    finally:
        os.close(following)


class _HashAfterWrite:
    """A sha256 that takes each piece only once the upload's file holds it: it can go on only
    if the bytes are written by another thread while it hashes (one thread doing both, hash
    then write, would wait here for a write that never comes, and give up)."""

    def __init__(self, path: str, offset: int) -> None:
        import threading

        self.path = path
        self.end = offset
        self.inner = hashlib.sha256()
        self.gave_up = False
        self.busy = threading.Lock()

    def update(self, data: bytes, /) -> None:
        with self.busy:
            self.end += len(data)
            deadline = time.monotonic() + 30
            while not self.gave_up and os.stat(self.path).st_size < self.end:
                if time.monotonic() > deadline:
                    self.gave_up = True
                    break
                time.sleep(0.001)
            self.inner.update(data)


def test_filesystem_hashes_a_batch_while_another_thread_writes_it(tmp_path, run) -> None:
    """Hashing and writing a received batch run side by side in two worker threads, so a
    large push goes at the pace of the slower of the two rather than of both added up."""
    from dockyard.storage import filesystem

    store = filesystem.FilesystemBlobStore(tmp_path / "blobs")
    data = os.urandom(4 * filesystem.WRITE_BATCH + 99)
    upload = uuid.uuid4().hex
    run(store.create_upload(upload))
    first = 1000
    assert run(store.write_upload(upload, 0, chunks(data[:first]))) == first
    digester = _HashAfterWrite(store._upload_file(upload), first)
    pieces = [data[i : i + 200_000] for i in range(first, len(data), 200_000)]
    assert run(store.write_upload(upload, first, chunks(*pieces), digester)) == len(data)
    assert not digester.gave_up, "the bytes were hashed before any thread wrote them"
    assert digester.inner.hexdigest() == hashlib.sha256(data[first:]).hexdigest()
    assert run(collect(store.read_upload(upload))) == data


def test_filesystem_lets_the_hash_land_before_undoing_a_failed_write(
    tmp_path, run, monkeypatch
) -> None:
    """A write that fails (a full disk) while its batch is still being hashed: the error is
    answered only once the hashing thread is done with the batch, and the upload is back at
    the chunk's start, as if the chunk never came."""
    import errno
    import threading

    from dockyard.storage import filesystem
    from dockyard.storage.base import StorageFullError

    store = filesystem.FilesystemBlobStore(tmp_path / "blobs")
    upload = uuid.uuid4().hex
    run(store.create_upload(upload))
    assert run(store.write_upload(upload, 0, chunks(b"k" * 10))) == 10
    real_write = filesystem._write_batch
    writes = 0
    failed = threading.Event()

    def second_write_fails(fd: int, position: int, pieces: list[bytes], back: bool) -> None:
        nonlocal writes
        writes += 1
        if writes == 2:
            failed.set()
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, position, pieces, back)

    monkeypatch.setattr(filesystem, "_write_batch", second_write_fails)

    class SlowAfterFailure:
        def __init__(self) -> None:
            self.hashing = False
            self.hashed = 0

        def update(self, data: bytes, /) -> None:
            self.hashing = True
            if self.hashed:  # the second batch: still hashing after its write failed
                assert failed.wait(30)
                time.sleep(0.05)
            self.hashed += len(data)
            self.hashing = False

    digester = SlowAfterFailure()
    batch = b"x" * filesystem.WRITE_BATCH
    with pytest.raises(StorageFullError):
        run(store.write_upload(upload, 10, chunks(batch, batch, batch), digester))
    assert not digester.hashing, "the error was answered while the batch was being hashed"
    assert digester.hashed == 2 * len(batch), "nothing was hashed after the failure"
    assert run(store.upload_size(upload)) == 10


def test_a_whole_small_upload_commits_in_one_step(blob_store, run) -> None:
    """`commit_upload_bytes`: the bytes given become the blob, the upload is consumed, a blob
    already there is left as it is, and a gone upload is a KeyError."""
    data = b"a small config" * 10
    upload = uuid.uuid4().hex
    run(blob_store.create_upload(upload))
    run(blob_store.commit_upload_bytes(upload, digest_of(data), data))
    assert run(blob_store.get(digest_of(data))) == data
    assert run(blob_store.upload_size(upload)) is None, "the upload is consumed"
    again = uuid.uuid4().hex
    run(blob_store.create_upload(again))
    run(blob_store.commit_upload_bytes(again, digest_of(data), data))
    assert run(blob_store.get(digest_of(data))) == data
    assert run(blob_store.upload_size(again)) is None
    with pytest.raises(KeyError):
        run(blob_store.commit_upload_bytes(upload, digest_of(b"other"), b"other"))
    assert run(blob_store.stat(digest_of(b"other"))) is None


def test_filesystem_small_upload_drops_what_a_dead_writer_left(tmp_path, run) -> None:
    """Bytes past the end from a writer that died mid-chunk never reach the blob."""
    from dockyard.storage.filesystem import FilesystemBlobStore

    store = FilesystemBlobStore(tmp_path / "blobs")
    upload = uuid.uuid4().hex
    run(store.create_upload(upload))
    run(store.write_upload(upload, 0, chunks(b"x" * 1000)))  # never accepted by its record
    data = b"short"
    run(store.commit_upload_bytes(upload, digest_of(data), data))
    assert run(store.get(digest_of(data))) == data
