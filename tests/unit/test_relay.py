"""The relay between one upstream download, the disk and the readers in the same process."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.proxy import relay as relay_module
from dockyard.proxy.relay import DownloadFailed, Relay

PIECE = 256 * 1024


def pieces(data: bytes) -> list[bytes]:
    return [data[i : i + PIECE] for i in range(0, len(data), PIECE)]


async def write_to(path: Path, chunks: AsyncIterator[bytes]) -> int:
    """A stand-in for the blob store's writer: appends to a file, a little slowly."""
    written = 0
    with open(path, "wb") as f:
        async for chunk in chunks:
            f.write(chunk)
            f.flush()
            written += len(chunk)
            await asyncio.sleep(0)
    return written


async def collect(relay: Relay, path: Path, out: list[bytes]) -> None:
    def opened() -> int | None:
        try:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None

    async for chunk in relay.read(opened):
        out.append(chunk)


def test_every_reader_gets_the_whole_blob_and_the_file_is_complete(tmp_path, monkeypatch):
    # A tiny window forces the slow reader onto the file for most of the blob.
    monkeypatch.setattr(relay_module, "WINDOW", PIECE)
    monkeypatch.setattr(relay_module, "AHEAD", 2 * PIECE)
    data = os.urandom(20 * PIECE + 123)
    path = tmp_path / "download"

    async def main() -> None:
        relay = Relay(len(data), "sha256")
        writer = asyncio.create_task(write_to(path, relay.unwritten()))
        fast: list[bytes] = []
        slow: list[bytes] = []
        readers = [asyncio.create_task(collect(relay, path, fast))]

        async def late_reader() -> None:
            await asyncio.sleep(0.05)
            await collect(relay, path, slow)

        readers.append(asyncio.create_task(late_reader()))
        for piece in pieces(data):
            await relay.publish(piece)
            await asyncio.sleep(0.002)
        assert await relay.digest() == "sha256:" + hashlib.sha256(data).hexdigest()
        relay.verify()
        assert await writer == len(data)
        await asyncio.gather(*readers)
        assert b"".join(fast) == data
        assert b"".join(slow) == data

    asyncio.run(main())
    assert path.read_bytes() == data


def test_the_last_bytes_wait_for_verification(tmp_path):
    data = os.urandom(3 * PIECE)
    path = tmp_path / "download"

    async def main() -> None:
        relay = Relay(len(data), "sha256")
        writer = asyncio.create_task(write_to(path, relay.unwritten()))
        got: list[bytes] = []
        reader = asyncio.create_task(collect(relay, path, got))
        for piece in pieces(data):
            await relay.publish(piece)
        await asyncio.sleep(0.05)
        assert sum(map(len, got)) < len(data), "the last piece went out unverified"
        relay.fail(ValueError("digest mismatch"))
        with pytest.raises(DownloadFailed, match="digest mismatch"):
            await reader
        await writer

    asyncio.run(main())


def test_a_failed_writer_stops_the_download(tmp_path, monkeypatch):
    monkeypatch.setattr(relay_module, "AHEAD", PIECE)
    data = os.urandom(10 * PIECE)

    async def main() -> None:
        relay = Relay(len(data), "sha256")

        async def broken_writer() -> None:
            async for _ in relay.unwritten():
                raise OSError(28, "No space left on device")

        writer = asyncio.create_task(broken_writer())
        writer.add_done_callback(lambda task: relay.fail(task.exception()))
        with pytest.raises(DownloadFailed, match="No space left"):
            for piece in pieces(data):
                await relay.publish(piece)

    asyncio.run(asyncio.wait_for(main(), 10))
