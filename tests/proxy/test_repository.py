"""The repository interface over the pull-through cache, in process: a cached repository reads
through to a real upstream on a miss and refuses every write, before reading any body."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from dockyard.assembly import open_registry
from dockyard.config import Settings
from dockyard.config import Upstream as UpstreamConfig
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.proxy.repository import READ_ONLY_CACHE, ProxiedRepository
from dockyard.service.blobs import BlobInfo
from dockyard.service.registry import Registry
from dockyard.service.repository import Arriving, LocalRepository
from tests.proxy.helpers import Upstream, make_image, sha256

REPO = "library/app"


@contextlib.asynccontextmanager
async def _registry(
    tmp_path: Path, up: Upstream, *, mirror: bool = False
) -> AsyncIterator[Registry]:
    """A registry caching `up`, started as a worker starts it."""
    settings = Settings(
        data_dir=tmp_path / "data", proxies=[UpstreamConfig(name="up", url=up.url, mirror=mirror)]
    )
    async with open_registry(settings, create=True) as registry:
        await registry.start()
        yield registry


async def _never_read() -> bytes:
    raise AssertionError("a refused write read its body")


async def _no_chunks() -> AsyncIterator[bytes]:
    raise AssertionError("a refused write read its body")
    yield b""  # pragma: no cover - makes this a generator


async def _refused(write: Callable[[], Awaitable[object]]) -> None:
    with pytest.raises(RegistryError) as caught:
        await write()
    assert caught.value.code == ErrorCode.UNSUPPORTED
    assert caught.value.message == READ_ONLY_CACHE


def test_a_cached_repository_reads_through_on_a_miss(tmp_path: Path, up: Upstream) -> None:
    image = make_image(tmp_path, "read-through")
    up.push_image(REPO, "v1", image)
    layer = image.layers[0]

    async def scenario() -> None:
        async with _registry(tmp_path, up) as registry:
            repo = registry.repository(f"up/{REPO}")
            assert isinstance(repo, ProxiedRepository)
            up.proxy.reset()
            record, warning = await repo.manifests.get("v1")
            assert (record.digest, warning) == (image.manifest_digest, None)
            assert await repo.manifests.content(record) == image.manifest_bytes
            assert up.proxy.matching("GET", f"/v2/{REPO}/manifests/")

            missing = await repo.blobs.find(layer.digest)
            assert isinstance(missing, Arriving) and missing.stream is not None
            assert missing.size == len(layer.compressed)
            body = b"".join([chunk async for chunk in missing.stream])
            assert sha256(body) == layer.digest
            assert not await missing.is_manifest()
            # The last bytes reach readers once verified, a moment before the blob is stored.
            for _ in range(500):
                if await registry.meta.linked_blob_size(f"up/{REPO}", layer.digest):
                    break
                await asyncio.sleep(0.01)

            up.proxy.reset()
            held = await registry.repository(f"up/{REPO}").blobs.find(layer.digest)
            assert isinstance(held, BlobInfo) and held.size == len(layer.compressed)
            again = b"".join([c async for c in repo.blobs.read(layer.digest, 0, held.size - 1)])
            assert again == body
            assert (await repo.tags.list(None, None)).items == ["v1"]
            assert not [p for p in up.proxy.paths() if "/blobs/" in p], up.proxy.paths()

    asyncio.run(scenario())


def test_a_cached_repository_refuses_every_write(tmp_path: Path, up: Upstream) -> None:
    image = make_image(tmp_path, "refused")
    up.push_image(REPO, "v1", image)

    async def scenario() -> None:
        async with _registry(tmp_path, up) as registry:
            repo = registry.repository(f"up/{REPO}")
            record, _ = await repo.manifests.get("v1")  # cached: writes are refused still
            up.proxy.reset()
            await _refused(lambda: repo.manifests.put("v2", _never_read, None, [], None))
            await _refused(lambda: repo.manifests.delete(record.digest))
            await _refused(lambda: repo.blobs.delete(image.config_digest))
            await _refused(lambda: repo.blobs.mount(image.config_digest, None, None))
            await _refused(repo.uploads.start)
            await _refused(lambda: repo.uploads.monolithic(image.config_digest, _no_chunks()))
            assert up.proxy.paths() == []
            assert (await repo.manifests.get(record.digest))[0].digest == record.digest

    asyncio.run(scenario())


def test_writes_to_a_name_only_the_mirror_answers_are_local(tmp_path: Path, up: Upstream) -> None:
    """The mirror answers reads of a name that is nowhere here; a push to it creates an
    ordinary repository, which then shadows the mirror."""
    image = make_image(tmp_path, "mirror")
    up.push_image(REPO, "v1", image)
    mine = make_image(tmp_path, "mine")

    async def scenario() -> None:
        async with _registry(tmp_path, up, mirror=True) as registry:
            assert isinstance(registry.repository("up/other"), ProxiedRepository)
            mirrored = await registry.repository(REPO).manifests.get("v1")
            assert mirrored[0].digest == image.manifest_digest

            fresh = "team/app"
            repo = registry.repository(fresh)
            for data in (mine.config_bytes, *(layer.compressed for layer in mine.layers)):
                await repo.uploads.monolithic(sha256(data), _once(data))

            async def body() -> bytes:
                return mine.manifest_bytes

            result = await repo.manifests.put("v1", body, None, [], None)
            assert result.digest == mine.manifest_digest
            local = await registry.repository(fresh).manifests.get("v1")
            assert local == (
                await LocalRepository(
                    fresh, registry.manifests, registry.blobs, registry.listing, registry.uploads
                ).manifests.get("v1")
            )
            assert local[0].digest == mine.manifest_digest

    asyncio.run(scenario())


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def test_a_download_is_handed_on_in_small_pieces(
    tmp_path: Path, up: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk and the clients get a cold blob in pieces of `PIECE`, each while the next is
    read, not in pieces of a MiB or more that every stage waits for whole."""
    from dockyard.proxy import downloads
    from dockyard.proxy.relay import Relay

    image = make_image(tmp_path, "pieces", layers=1, files_per_layer=6, file_size=2 * 1024 * 1024)
    up.push_image(REPO, "v1", image)
    layer = image.layers[0]
    assert len(layer.compressed) > 6 * 1024 * 1024
    published: list[int] = []
    publish = Relay.publish

    async def recorded(self: Relay, piece: bytes) -> None:
        published.append(len(piece))
        await publish(self, piece)

    monkeypatch.setattr(Relay, "publish", recorded)

    async def scenario() -> None:
        async with _registry(tmp_path, up) as registry:
            repo = registry.repository(f"up/{REPO}")
            missing = await repo.blobs.find(layer.digest)
            assert isinstance(missing, Arriving) and missing.stream is not None
            body = b"".join([chunk async for chunk in missing.stream])
            assert sha256(body) == layer.digest

    asyncio.run(scenario())
    assert sum(published) == len(layer.compressed)
    # The first piece as the parser handed it over, the last what was left.
    assert max(published[1:-1]) <= downloads.PIECE, published
