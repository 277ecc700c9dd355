"""What every place an image can live in offers: a source to read from, a destination to write to.

A registry, an OCI layout, an `oci-archive` and a `docker-archive` each implement these two
protocols; copying (push, pull, copy) is written once against them (see `transfer.py`). Blob
bodies are streams, opened at an offset so a destination can resume after a dropped connection.
"""

from __future__ import annotations

import json
import platform as host_platform
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.client.errors import ClientError
from dockyard.core import mediatypes as mt
from dockyard.core.manifest import Descriptor

# Opens a blob's bytes from `offset` to the end.
BlobOpener = Callable[[int], AsyncIterator[bytes]]
# Told the number of bytes just transferred, and once with a negative number on a restart.
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest or index exactly as stored: its bytes, media type and digest."""

    body: bytes
    media_type: str
    digest: str

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEXES

    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": len(self.body),
            **extra,
        }


class ImageSource(Protocol):
    """Where an image is read from."""

    def describe(self) -> str:
        """A short name for messages, e.g. `docker://localhost:5000/app:1.0` or `oci:dir:tag`."""

    async def get_manifest(self, reference: str | None = None) -> Manifest:
        """The manifest named by `reference` (a tag or digest), or the source's own one."""

    def open_blob(self, descriptor: Descriptor, offset: int = 0) -> AsyncIterator[bytes]:
        """Stream a blob from `offset`; raises NotFound if absent."""

    async def close(self) -> None: ...


class ImageDestination(Protocol):
    """Where an image is written to. Blobs first, child manifests next, the top manifest last."""

    def describe(self) -> str: ...

    async def has_blob(self, descriptor: Descriptor) -> bool:
        """True when the destination already holds this blob (nothing to transfer)."""

    async def mount_blob(self, descriptor: Descriptor, source: ImageSource) -> str | None:
        """Link the blob from where `source` keeps it without moving bytes, when the
        destination can (same registry); returns a label such as the source repository."""

    async def put_blob(
        self, descriptor: Descriptor, opener: BlobOpener, progress: ProgressCallback | None = None
    ) -> None:
        """Store a blob, verifying digest and size; may call `opener` again to resume."""

    async def put_manifest(self, manifest: Manifest, tag: str | None) -> str:
        """Store a manifest (under `tag` when given, else only by digest); return its digest."""

    async def commit(self) -> None:
        """Finish: an archive is written out, a layout's index is saved. Nothing is visible
        half-done: a failure before commit leaves no partial image behind."""

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ClientError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def host(cls) -> Platform:
        machine = host_platform.machine().lower()
        arch = {
            "x86_64": "amd64",
            "amd64": "amd64",
            "aarch64": "arm64",
            "arm64": "arm64",
            "armv7l": "arm",
            "i386": "386",
            "i686": "386",
            "ppc64le": "ppc64le",
            "s390x": "s390x",
            "riscv64": "riscv64",
        }.get(machine, machine)
        return cls("linux", arch, "v7" if machine == "armv7l" else None)

    def matches(self, entry: dict[str, Any] | None) -> bool:
        if not entry:
            return False
        if entry.get("os") != self.os or entry.get("architecture") != self.architecture:
            return False
        return self.variant is None or entry.get("variant") in (None, self.variant)

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")
