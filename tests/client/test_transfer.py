"""The copy engine on in-memory stores: order, skipping, mounting, platforms, resume."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from dockyard.client.errors import ClientError
from dockyard.client.image import BlobOpener, Manifest, Platform, ProgressCallback
from dockyard.client.transfer import Copier, CopyOptions, build_index
from dockyard.core import mediatypes as mt
from dockyard.core.digest import sha256_of
from dockyard.core.manifest import Descriptor


class MemoryStore:
    """Implements both protocols over dicts; records the order of writes."""

    def __init__(self, name: str = "mem", mountable: set[str] | None = None) -> None:
        self.name = name
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, Manifest] = {}
        self.tags: dict[str, str] = {}
        self.writes: list[str] = []
        self.mountable = mountable or set()
        self.committed = False
        self.fail_once_at: int | None = None

    def describe(self) -> str:
        return self.name

    async def get_manifest(self, reference: str | None = None) -> Manifest:
        digest = self.tags.get(reference or "latest", reference or "")
        if digest not in self.manifests:
            raise ClientError(f"no manifest {reference}")
        return self.manifests[digest]

    async def open_blob(self, descriptor: Descriptor, offset: int = 0) -> AsyncIterator[bytes]:
        data = self.blobs[descriptor.digest]
        for i in range(offset, len(data), 10):
            await asyncio.sleep(0)
            yield data[i : i + 10]

    async def close(self) -> None:
        pass

    async def has_blob(self, descriptor: Descriptor) -> bool:
        return descriptor.digest in self.blobs

    async def mount_blob(self, descriptor: Descriptor, source: object) -> str | None:
        if descriptor.digest in self.mountable:
            self.blobs[descriptor.digest] = b"mounted"
            self.writes.append(f"mount {descriptor.digest}")
            return "other/repo"
        return None

    async def put_blob(
        self, descriptor: Descriptor, opener: BlobOpener, progress: ProgressCallback | None = None
    ) -> None:
        received = b""
        async for chunk in opener(0):
            received += chunk
            if self.fail_once_at is not None and len(received) >= self.fail_once_at:
                self.fail_once_at = None
                async for rest in opener(len(received)):  # resume where we were
                    received += rest
                break
            if progress:
                progress(len(chunk))
        assert sha256_of(received) == descriptor.digest
        self.blobs[descriptor.digest] = received
        self.writes.append(f"blob {descriptor.digest}")

    async def put_manifest(self, manifest: Manifest, tag: str | None) -> str:
        for child in json.loads(manifest.body).get("manifests", []):
            assert child["digest"] in self.manifests, "children must come before their index"
        for layer in json.loads(manifest.body).get("layers", []):
            assert layer["digest"] in self.blobs, "blobs must come before their manifest"
        self.manifests[manifest.digest] = manifest
        if tag:
            self.tags[tag] = manifest.digest
        self.writes.append(f"manifest {manifest.digest}")
        return manifest.digest

    async def commit(self) -> None:
        self.committed = True


def add_image(store: MemoryStore, arch: str, layers: list[bytes]) -> Manifest:
    config = json.dumps({"architecture": arch, "os": "linux"}).encode()
    for blob in [config, *layers]:
        store.blobs[sha256_of(blob)] = blob
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "digest": sha256_of(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256_of(b),
                    "size": len(b),
                }
                for b in layers
            ],
        }
    ).encode()
    manifest = Manifest(body, mt.OCI_MANIFEST, sha256_of(body))
    store.manifests[manifest.digest] = manifest
    return manifest


def two_platforms(store: MemoryStore) -> Manifest:
    amd = add_image(store, "amd64", [b"shared layer", b"amd64 layer"])
    arm = add_image(store, "arm64", [b"shared layer", b"arm64 layer"])
    index = build_index(
        [
            amd.descriptor(platform={"os": "linux", "architecture": "amd64"}),
            arm.descriptor(platform={"os": "linux", "architecture": "arm64"}),
        ],
        mt.OCI_INDEX,
    )
    store.manifests[index.digest] = index
    store.tags["latest"] = index.digest
    return index


def run(coro):
    return asyncio.run(coro)


def test_single_image_then_nothing_to_transfer() -> None:
    source, dest = MemoryStore(), MemoryStore()
    image = add_image(source, "amd64", [b"layer one", b"layer two"])
    source.tags["v1"] = image.digest
    result = run(Copier(source, dest).copy("v1", "v1"))
    assert result.blobs_transferred == 3 and dest.tags["v1"] == image.digest
    assert dest.writes[-1] == f"manifest {image.digest}" and dest.committed
    again = run(Copier(source, dest).copy("v1", "v1"))
    assert again.blobs_transferred == 0 and again.bytes_transferred == 0
    assert again.blobs_skipped == 3


def test_index_all_platforms_shares_blobs() -> None:
    source, dest = MemoryStore(), MemoryStore()
    index = two_platforms(source)
    result = run(Copier(source, dest, CopyOptions(all_platforms=True)).copy(None, "multi"))
    assert dest.tags["multi"] == index.digest
    assert result.blobs_transferred == 5  # shared layer once, two configs, two layers
    assert sorted(result.platforms) == ["linux/amd64", "linux/arm64"]


def test_index_one_platform_and_missing_platform() -> None:
    source = MemoryStore()
    two_platforms(source)
    dest = MemoryStore()
    result = run(
        Copier(source, dest, CopyOptions(platform=Platform.parse("linux/arm64"))).copy(None, "arm")
    )
    chosen = dest.manifests[dest.tags["arm"]]
    assert json.loads(chosen.body)["layers"][1]["size"] == len(b"arm64 layer")
    assert result.platforms == ["linux/arm64"]
    with pytest.raises(ClientError, match="linux/amd64, linux/arm64"):
        run(
            Copier(source, MemoryStore(), CopyOptions(platform=Platform.parse("linux/s390x"))).copy(
                None, "x"
            )
        )


def test_mount_instead_of_upload_and_resume() -> None:
    source = MemoryStore()
    image = add_image(source, "amd64", [b"m" * 100, b"r" * 100])
    source.tags["latest"] = image.digest
    dest = MemoryStore(mountable={sha256_of(b"m" * 100)})
    dest.fail_once_at = 30
    result = run(Copier(source, dest).copy(None, "latest"))
    assert result.blobs_mounted == 1 and result.blobs_transferred == 2
    assert dest.blobs[sha256_of(b"r" * 100)] == b"r" * 100


def test_platform_parsing() -> None:
    assert str(Platform.parse("linux/arm/v7")) == "linux/arm/v7"
    with pytest.raises(ClientError):
        Platform.parse("linux")
    assert Platform.parse("linux/arm64").matches(
        {"os": "linux", "architecture": "arm64", "variant": "v8"}
    )
