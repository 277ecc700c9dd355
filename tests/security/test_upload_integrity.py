"""Finding 1 (issue 13): no sequence of requests can make Dockyard store or serve bytes under a
digest they do not hash to.

One attacker races PATCHes and PUTs on one upload of their own, in many interleavings, on the
filesystem and on S3, with one worker and with two: whatever the answers, every blob served
hashes to its digest, a victim pushing the real content afterwards pulls exactly it, and
`dockyard fsck` finds nothing wrong."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from dockyard.storage.base import UploadBusyError
from dockyard.storage.filesystem import FilesystemBlobStore
from dockyard.storage.s3 import S3BlobStore
from tests.conftest import s3_postgres_env
from tests.support.fsck import run_fsck
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY
from tests.support.server import RunningRegistry

SIZES = [300 * 1024, 700 * 1024, 1536 * 1024]


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chunk_range(start: int, data: bytes) -> dict[str, str]:
    return {
        "Content-Range": f"{start}-{start + len(data) - 1}",
        "Content-Type": "application/octet-stream",
    }


async def _race(
    c: httpx.AsyncClient,
    repo: str,
    scenario: int,
    size: int,
    claimed: set[str],
    made: list[bytes],
    seed: int,
) -> None:
    """One attack on a fresh upload; records every digest a PUT was answered 201 for."""
    rnd = random.Random(seed)
    x, y = rnd.randbytes(size), rnd.randbytes(size)
    made += [x, y]
    location = (await c.post(f"/v2/{repo}/blobs/uploads/")).headers["Location"]

    async def patch(data: bytes, start: int) -> None:
        # A refusal may close the connection before the body is sent: the attacker shrugs.
        with contextlib.suppress(httpx.TransportError):
            response = await c.patch(location, content=data, headers=chunk_range(start, data))
            assert response.status_code < 500, response.text

    async def put(digest: str, data: bytes | None = None, start: int = 0) -> None:
        headers = chunk_range(start, data) if data else {}
        with contextlib.suppress(httpx.TransportError):
            response = await c.put(
                location, params={"digest": digest}, content=data or b"", headers=headers
            )
            assert response.status_code < 500, response.text
            if response.status_code == 201:
                claimed.add(digest)

    if scenario == 0:  # PATCH/PATCH at one offset, then a PUT claiming either content
        await asyncio.gather(patch(x, 0), patch(y, 0))
        await put(sha(x) if seed % 2 else sha(y))
    elif scenario == 1:  # PATCH/PATCH, then PUT/PUT each claiming one of them
        await asyncio.gather(patch(x, 0), patch(y, 0))
        await asyncio.gather(put(sha(x)), put(sha(y)))
    elif scenario == 2:  # PUT (no body) racing a PATCH appending after the hashed end
        await patch(x, 0)
        await asyncio.gather(put(sha(x)), patch(y, size))
    elif scenario == 3:  # PUT with the last chunk racing PUT with another one
        await asyncio.gather(put(sha(x), x), put(sha(y), y))
    elif scenario == 4:  # a PATCH racing a PUT whose body is not what its digest claims
        await asyncio.gather(patch(x, 0), put(sha(x), y))
        await put(sha(x))
    elif scenario == 5:  # a two-chunk upload, second chunk raced, PUT claiming x + x
        half = x[: size // 2]
        await patch(half, 0)
        await asyncio.gather(patch(x[size // 2 :], len(half)), patch(y[size // 2 :], len(half)))
        await asyncio.gather(put(sha(x)), patch(y, size))
        await put(sha(half + y[size // 2 :]))
    else:  # PATCH, PUT and DELETE together
        await asyncio.gather(patch(x, 0), put(sha(x), y), c.delete(location), patch(y, 0))
        await put(sha(y))


def attack(server: RunningRegistry, env: dict[str, str], rounds: int) -> None:
    repo = "attacker/race"
    claimed: set[str] = set()
    made: list[bytes] = []

    async def run() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as c:
            seed = 0
            for _ in range(rounds):
                for scenario in range(7):
                    for size in SIZES:
                        seed += 1
                        await _race(c, repo, scenario, size, claimed, made, seed)
            for digest in claimed:
                body = (await c.get(f"/v2/{repo}/blobs/{digest}")).content
                assert sha(body) == digest, f"{digest} serves bytes hashing to {sha(body)}"

    asyncio.run(run())
    assert claimed, "no PUT succeeded at all: the races never reached a commit"
    # The victim pushes every content the attacker could have aimed at, in one go each, and
    # pulls back exactly what she pushed.
    with httpx.Client(base_url=server.url, timeout=120) as c:
        for content in made:
            digest = sha(content)
            pushed = c.post(
                "/v2/victim/app/blobs/uploads/", params={"digest": digest}, content=content
            )
            assert pushed.status_code == 201, pushed.text
            assert c.get(f"/v2/victim/app/blobs/{digest}").content == content
    report = run_fsck(server.data_dir, env=env)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "0 bad blobs" in report.stdout


@pytest.mark.parametrize("workers", ["1", "2"])
def test_finding_01_racing_writes_never_store_bytes_under_a_wrong_digest_filesystem(
    start_registry: Callable[..., RunningRegistry], workers: str
) -> None:
    env = {"DOCKYARD_WORKERS": workers}
    server = start_registry(env=env)
    attack(server, env, rounds=3)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_finding_01_racing_writes_never_store_bytes_under_a_wrong_digest_s3(
    start_registry: Callable[..., RunningRegistry], s3_server, pg_cluster, workers: str
) -> None:
    env = {**s3_postgres_env(s3_server, pg_cluster, redirect=False), "DOCKYARD_WORKERS": workers}
    server = start_registry(env=env)
    attack(server, env, rounds=2)


def test_finding_01_refused_chunk_leaves_no_trace_in_the_hash(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    """A chunk refused for its length leaves the upload, bytes and hash, as it was."""
    server = start_registry()
    first, second = os.urandom(400 * 1024), os.urandom(400 * 1024)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        location = c.post("/v2/solo/blobs/uploads/").headers["Location"]
        assert c.patch(location, content=first, headers=chunk_range(0, first)).status_code == 202
        lying = {"Content-Range": f"{len(first)}-{len(first) + 10}"}
        assert c.patch(location, content=second, headers=lying).status_code == 416
        assert c.put(location, params={"digest": sha(first + second)}).status_code == 400
        location = c.post("/v2/solo/blobs/uploads/").headers["Location"]
        assert c.patch(location, content=first, headers=chunk_range(0, first)).status_code == 202
        assert c.patch(location, content=second, headers=lying).status_code == 416
        done = c.put(location, params={"digest": sha(first)})
        assert done.status_code == 201, done.text
        assert c.get(f"/v2/solo/blobs/{sha(first)}").content == first


async def _stream(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def test_finding_01_s3_commits_exactly_the_recorded_pieces(s3_server) -> None:
    """Two chunks written for one offset never mix: what is hashed and committed is the
    piece the record names, whatever else lies under the upload."""
    store = S3BlobStore.from_url(
        f"s3://{s3_server.create_bucket()}/p",
        endpoint=s3_server.endpoint,
        region="us-east-1",
        path_style=True,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        presign_seconds=None,
    )
    upload = "ab" * 16
    a, b = os.urandom(300 * 1024), os.urandom(300 * 1024)

    async def scenario() -> None:
        await store.create_upload(upload)
        assert await store.write_upload(upload, 0, _stream(a), piece="aaaa") == len(a)
        assert await store.write_upload(upload, 0, _stream(b), piece="bbbb") == len(b)
        hashed = b"".join([c async for c in store.read_upload(upload, ["0.bbbb"], len(b))])
        assert hashed == b
        with pytest.raises(KeyError):  # a record that does not cover the size it claims
            await store.commit_upload(upload, sha(b), [], len(b))
        await store.commit_upload(upload, sha(b), ["0.bbbb"], len(b))
        assert await store.get(sha(b)) == b
        with pytest.raises(KeyError):  # completed meanwhile: unknown, not a 500
            await store.commit_upload(upload, sha(a), ["0.aaaa"], len(a))
        assert await store.stat(sha(a)) is None

    asyncio.run(scenario())


def test_finding_01_filesystem_upload_is_held_by_one_request(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    upload = "cd" * 16
    data = os.urandom(1000)

    async def scenario() -> None:
        await store.create_upload(upload)
        with store.hold_upload(upload):
            with pytest.raises(UploadBusyError), store.hold_upload(upload):
                pass
            await store.write_upload(upload, 0, _stream(data))
            # A request that opened the upload before it was committed finds it gone.
            late = store.hold_upload(upload)
            await store.commit_upload(upload, sha(data))
        with pytest.raises(KeyError), late:
            pass
        assert await store.get(sha(data)) == data

    asyncio.run(scenario())


def test_finding_01_a_busy_upload_refuses_other_writers(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    """While one PATCH is streaming, a PATCH, a PUT and a DELETE on that upload are refused
    with 416 and where the upload stands; the first one then completes untouched."""
    server = start_registry()
    first, second = os.urandom(300 * 1024), os.urandom(300 * 1024)

    async def run() -> None:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            location = (await c.post("/v2/busy/one/blobs/uploads/")).headers["Location"]
            assert (await c.patch(location, content=first)).status_code == 202
            release = asyncio.Event()

            async def slow() -> AsyncIterator[bytes]:
                yield second[:1000]
                await release.wait()
                yield second[1000:]

            streaming = asyncio.create_task(c.patch(location, content=slow()))
            await asyncio.sleep(0.5)
            others = [
                await c.patch(location, content=b"intruder"),
                await c.put(location, params={"digest": sha(first)}),
                await c.delete(location),
            ]
            for refused in others:
                assert refused.status_code == 416, refused.text
                assert refused.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
                assert refused.headers["Range"] == f"0-{len(first) - 1}"
                assert refused.headers["Location"] == location
            release.set()
            assert (await streaming).status_code == 202
            done = await c.put(location, params={"digest": sha(first + second)})
            assert done.status_code == 201, done.text
            body = (await c.get(f"/v2/busy/one/blobs/{sha(first + second)}")).content
            assert body == first + second

    asyncio.run(run())
