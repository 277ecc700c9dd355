"""A minimal copy driver over the ImageSource/ImageDestination protocols, and small readers.

The real transfer engine lives in dockyard.client.transfer; this one only does what the
protocols promise, in their order: blobs by descriptor, children, the top manifest, commit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from dockyard.client.image import ImageDestination, ImageSource, Manifest
from dockyard.core.manifest import Descriptor, parse_manifest


async def _copy_one(src: ImageSource, dst: ImageDestination, manifest: Manifest) -> None:
    parsed = parse_manifest(manifest.body, manifest.media_type)
    for child in parsed.children:
        child_manifest = await src.get_manifest(child.digest)
        await _copy_one(src, dst, child_manifest)
        await dst.put_manifest(child_manifest, None)
    for blob in parsed.blobs:
        if not await dst.has_blob(blob):
            await dst.put_blob(blob, lambda offset, blob=blob: src.open_blob(blob, offset))


async def copy_image_async(
    src: ImageSource, dst: ImageDestination, tag: str | None = None, reference: str | None = None
) -> Manifest:
    try:
        top = await src.get_manifest(reference)
        await _copy_one(src, dst, top)
        await dst.put_manifest(top, tag)
        await dst.commit()
        return top
    finally:
        await dst.close()
        await src.close()


def copy_image(
    src: ImageSource, dst: ImageDestination, tag: str | None = None, reference: str | None = None
) -> Manifest:
    """Copy src's image to dst (all platforms of an index); returns the top manifest."""
    return asyncio.run(copy_image_async(src, dst, tag, reference))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def fetch_manifest(src: ImageSource, reference: str | None = None) -> Manifest:
    async def go() -> Manifest:
        try:
            return await src.get_manifest(reference)
        finally:
            await src.close()

    return asyncio.run(go())


def fetch_blob(src: ImageSource, digest: str, size: int, media_type: str = "x") -> bytes:
    async def go() -> bytes:
        try:
            return await read_all(src.open_blob(Descriptor(media_type, digest, size)))
        finally:
            await src.close()

    return asyncio.run(go())


def bytes_opener(data: bytes, chunk: int = 1000) -> Callable[[int], AsyncIterator[bytes]]:
    """An opener serving `data` from an offset in small chunks."""

    async def stream(offset: int) -> AsyncIterator[bytes]:
        for start in range(offset, len(data), chunk):
            yield data[start : start + chunk]

    return stream


def layer_digests(manifest: Manifest) -> list[str]:
    return [layer["digest"] for layer in manifest.json()["layers"]]


def config_digest(manifest: Manifest) -> str:
    return manifest.json()["config"]["digest"]


def as_json(data: bytes) -> dict[str, Any]:
    return json.loads(data)
