"""What a push asks of S3: the requests and the objects they leave, counted (never timed).

A blob sent whole (a PUT `?digest=` opening nothing before it) is uploaded as the parts of a
multipart upload of the blob's own key, which only the digest check completes: no server-side
copy afterwards, and a refused digest leaves neither an object nor an unfinished upload. An
upload's pieces and blobs are made of parts that are whole multiples of the S3 server's own
chunk (SeaweedFS cuts at 4 MiB)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import obstore
import pytest

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.uploads import UploadService
from dockyard.storage import s3 as s3_module
from dockyard.storage import s3_multipart
from dockyard.storage.s3 import S3BlobStore
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedS3

MiB = 1024 * 1024


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def body(data: bytes, step: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), step):
        yield data[start : start + step]


def s3_store(seaweed: SeaweedS3) -> S3BlobStore:
    return S3BlobStore.from_url(
        f"s3://{seaweed.create_bucket()}/registry",
        endpoint=seaweed.endpoint,
        region="us-east-1",
        path_style=True,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        presign_seconds=600,
    )


@pytest.fixture
def service(seaweed: SeaweedS3, tmp_path: Path, run):
    meta = SQLMetadataStore.open_sqlite(tmp_path / "meta.db")
    yield UploadService(s3_store(seaweed), meta, ttl_seconds=3600)
    run(meta.close())


class Copies:
    """Every server-side copy the store asks for: whole objects and multipart parts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.objects: list[tuple[str, str]] = []
        self.parts: list[str] = []
        real_copy = obstore.copy_async
        real_part = s3_multipart.MultipartClient.copy_part

        async def copy_async(store, source, target, **kwargs):  # type: ignore[no-untyped-def]
            self.objects.append((source, target))
            return await real_copy(store, source, target, **kwargs)

        async def copy_part(client, key, upload, number, source, first, last):  # type: ignore[no-untyped-def]
            self.parts.append(key)
            return await real_part(client, key, upload, number, source, first, last)

        monkeypatch.setattr(s3_module.obstore, "copy_async", copy_async)
        monkeypatch.setattr(s3_multipart.MultipartClient, "copy_part", copy_part)


def parts_of(store: S3BlobStore, key: str, run) -> int:  # type: ignore[no-untyped-def]
    """How many parts the object was completed from (its ETag's `-N`; 1 for a plain PUT)."""

    async def head() -> dict:
        return await obstore.head_async(store.store, key)

    etag = str(run(head())["e_tag"]).strip('"')
    return int(etag.rpartition("-")[2]) if "-" in etag else 1


def unfinished_uploads(store: S3BlobStore) -> list[str]:
    """Keys of the multipart uploads begun in the store's bucket and neither completed nor
    aborted (they hold bytes nobody sees)."""
    assert store.multipart is not None
    client = boto3.client(
        "s3",
        endpoint_url=store.multipart._origin,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    listed = client.list_multipart_uploads(Bucket=store.multipart.bucket)
    return [u["Key"] for u in listed.get("Uploads", [])]


def test_a_blob_sent_whole_is_published_without_a_copy(service, run, monkeypatch) -> None:
    """POST, then one PUT with the whole body and `?digest=`: the parts go to the blob's own
    key and the digest check completes them; nothing is copied on S3 afterwards."""
    copies = Copies(monkeypatch)
    store: S3BlobStore = service.blobs
    data = os.urandom(20 * MiB + 123)
    digest = digest_of(data)
    status = run(service.start("push/whole"))
    assert run(service.finish("push/whole", status.id, digest, body(data))) == digest
    assert copies.objects == [] and copies.parts == []

    async def read() -> bytes:
        return b"".join([chunk async for chunk in store.read(digest)])

    assert run(read()) == data
    # 8 MiB parts: 8 + 8 + 4 MiB and 123 bytes.
    assert parts_of(store, store._blob_key(digest), run) == 3
    assert unfinished_uploads(store) == []
    assert run(store.upload_size(status.id)) is None  # the upload's marker is gone too


def test_a_whole_blob_under_a_wrong_digest_leaves_nothing(service, run) -> None:
    store: S3BlobStore = service.blobs
    data = os.urandom(12 * MiB)
    claimed = digest_of(b"something else")
    status = run(service.start("push/wrong"))
    with pytest.raises(RegistryError) as refused:
        run(service.finish("push/wrong", status.id, claimed, body(data)))
    assert refused.value.code is ErrorCode.DIGEST_INVALID
    assert run(store.stat(claimed)) is None
    assert run(store.stat(digest_of(data))) is None
    assert unfinished_uploads(store) == []
    assert run(store.upload_size(status.id)) is None


def test_a_piece_is_written_in_parts_of_whole_s3_chunks(seaweed, run) -> None:
    """A 16 MiB chunk becomes two 8 MiB parts (SeaweedFS keeps each as two of its 4 MiB
    chunks), not obstore's default 5 MiB parts (four, each cut in a 4 and a 1 MiB chunk)."""
    store = s3_store(seaweed)
    upload = "ab" * 16
    run(store.create_upload(upload))
    data = os.urandom(16 * MiB)
    run(store.write_upload(upload, 0, body(data), piece="p1"))
    assert parts_of(store, store._piece_key(upload, 0, "p1"), run) == 2
