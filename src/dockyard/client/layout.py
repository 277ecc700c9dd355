"""OCI image layouts (`oci:PATH[:TAG]`): a folder with `oci-layout`, `index.json` and
`blobs/<alg>/<hex>`, as the OCI image spec's image-layout.md defines it.

A tag is the `org.opencontainers.image.ref.name` annotation of an index.json entry. Like skopeo,
only the top manifest of a copy gets an entry; the children of an index are plain blobs. Writes
are crash-safe: each blob is verified in a temporary file and renamed into place, and index.json
is replaced atomically in `commit()` only, after checking that everything it names is present,
so a failed copy leaves the previous index untouched.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from dockyard.client.blobio import (
    DirTree,
    Tree,
    blob_relpath,
    fsync_dir,
    parse_digest,
    receive_blob,
    write_atomic,
)
from dockyard.client.errors import ClientError, DigestMismatch, NotFound
from dockyard.client.image import BlobOpener, ImageSource, Manifest, ProgressCallback
from dockyard.core import file_lock
from dockyard.core import mediatypes as mt
from dockyard.core.errors import RegistryError
from dockyard.core.manifest import Descriptor, ParsedManifest, parse_manifest

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = "1.0.0"
OCI_LAYOUT_BODY = json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode()

# image-layout.md: ref ::= component ("/" component)*, separators [-._:@+] or "--".
_COMPONENT = r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*"
_REF_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")


def check_tag(tag: str | None) -> str | None:
    """Refuse a tag the image spec's ref.name grammar does not allow (skopeo refuses it too)."""
    if tag is not None and not _REF_NAME.match(tag):
        raise ClientError(
            f"invalid OCI layout tag {tag!r}: use letters, digits and the "
            "separators - . _ : @ + (components joined by /)"
        )
    return tag


def compact_json(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def entry_tag(entry: dict[str, Any]) -> str | None:
    annotations = entry.get("annotations")
    return annotations.get(REF_NAME) if isinstance(annotations, dict) else None


def guess_media_type(body: bytes) -> str:
    """The media type of a manifest found only as a blob, from what its JSON says or holds."""
    try:
        doc = json.loads(body)
    except ValueError:
        return "application/octet-stream"
    if not isinstance(doc, dict):
        return "application/octet-stream"
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    return mt.OCI_INDEX if "manifests" in doc else mt.OCI_MANIFEST


def verify_manifest(manifest: Manifest) -> None:
    parsed = parse_digest(manifest.digest)
    actual = parsed.hasher()
    actual.update(manifest.body)
    if actual.hexdigest() != parsed.hex:
        raise DigestMismatch(
            f"manifest {manifest.digest}: content has digest "
            f"{parsed.algorithm}:{actual.hexdigest()}"
        )


def parse(manifest: Manifest) -> ParsedManifest:
    try:
        return parse_manifest(manifest.body, manifest.media_type)
    except RegistryError as exc:
        raise ClientError(
            f"manifest {manifest.digest} is invalid: {exc}", code="MANIFEST_INVALID"
        ) from exc


class LayoutReader(abc.ABC):
    """An OCI layout read through a Tree: the logic `oci:` and `oci-archive:` share."""

    transport = "oci"

    def __init__(self, path: Path | str, tag: str | None = None) -> None:
        self.path = Path(path)
        self.label = f"{self.transport}:{self.path}" + (f":{tag}" if tag else "")
        self.tag = tag
        self._tree: Tree | None = None
        self._index: dict[str, Any] | None = None

    def describe(self) -> str:
        return self.label

    @abc.abstractmethod
    def _open_tree(self) -> Tree:
        """The folder or tarball the layout is read from."""

    async def _ready(self) -> tuple[Tree, dict[str, Any]]:
        if self._tree is None:
            self._tree = await asyncio.to_thread(self._open_tree)
        if self._index is None:
            self._index = await asyncio.to_thread(self._read_index, self._tree)
        return self._tree, self._index

    def _read_index(self, tree: Tree) -> dict[str, Any]:
        if tree.size("oci-layout") is None:
            raise NotFound(f"{self.label} is not an OCI image layout (no oci-layout file)")
        try:
            version = json.loads(tree.read_bytes("oci-layout")).get("imageLayoutVersion")
            index = json.loads(tree.read_bytes("index.json"))
        except (ValueError, AttributeError) as exc:
            raise ClientError(f"{self.label}: oci-layout or index.json is not valid JSON") from exc
        if not isinstance(version, str) or not version.startswith("1."):
            raise ClientError(f"{self.label}: unsupported image layout version {version!r}")
        if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
            raise ClientError(f"{self.label}: index.json has no manifests list")
        return index

    def _select(self, index: dict[str, Any], tag: str | None) -> dict[str, Any]:
        entries = [e for e in index["manifests"] if isinstance(e, dict)]
        tags = [t for t in (entry_tag(e) for e in entries) if t is not None]
        if tag is None:
            if len(entries) == 1:
                return entries[0]
            if not entries:
                raise NotFound(f"{self.label} holds no image")
            raise ClientError(
                f"{self.label} holds {len(entries)} images; name one of the tags: "
                f"{', '.join(tags) or '(none are tagged)'}"
            )
        for entry in entries:
            if entry_tag(entry) == tag:
                return entry
        raise NotFound(
            f"{self.label} has no image tagged {tag!r}; tags: {', '.join(tags) or '(none)'}"
        )

    async def get_manifest(self, reference: str | None = None) -> Manifest:
        tree, index = await self._ready()
        entry: dict[str, Any] | None
        if reference is not None and is_digest(reference):
            digest = reference
            entry = next(
                (
                    e
                    for e in index["manifests"]
                    if isinstance(e, dict) and e.get("digest") == digest
                ),
                None,
            )
        else:
            entry = self._select(index, reference if reference is not None else self.tag)
            digest = entry.get("digest", "")
        body = await asyncio.to_thread(tree.read_bytes, blob_relpath(digest))
        media_type = (entry or {}).get("mediaType") or guess_media_type(body)
        manifest = Manifest(body, media_type, digest)
        verify_manifest(manifest)
        if entry is not None and entry.get("size") not in (None, len(body)):
            raise DigestMismatch(
                f"manifest {digest}: index.json says {entry.get('size')} bytes, "
                f"the blob has {len(body)}"
            )
        return manifest

    async def open_blob(self, descriptor: Descriptor, offset: int = 0) -> AsyncIterator[bytes]:
        tree, _ = await self._ready()
        name = blob_relpath(descriptor.digest)
        if tree.size(name) is None:
            raise NotFound(f"{self.label} has no blob {descriptor.digest}")
        async for chunk in tree.open(name, offset):
            yield chunk

    async def close(self) -> None:
        if self._tree is not None:
            self._tree.close()
            self._tree = None


def is_digest(text: str) -> bool:
    try:
        parse_digest(text)
    except ClientError:
        return False
    return True


class OCILayoutSource(LayoutReader):
    """`oci:PATH[:TAG]` as a source; without a tag the layout must hold exactly one image."""

    def _open_tree(self) -> Tree:
        if not self.path.is_dir():
            raise NotFound(f"{self.label}: {self.path} is not a directory")
        return DirTree(self.path)


class OCILayoutDestination:
    """`oci:PATH[:TAG]` as a destination: created when missing, other entries kept.

    Writing a tag replaces the entry that had it; without a tag the image gets an untagged
    entry (unless one with the same digest exists). A folder this destination created is removed
    again if the copy never commits.
    """

    accepts_index = True

    def __init__(self, path: Path | str, tag: str | None = None, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.tag = check_tag(tag)
        self.fsync = fsync
        self._created: Path | None = None
        self._prepared = False
        self._prepare_lock = threading.Lock()
        self._top: tuple[Manifest, str | None] | None = None
        self._committed = False
        self._temps: set[Path] = set()

    def describe(self) -> str:
        return f"oci:{self.path}" + (f":{self.tag}" if self.tag else "")

    # -- preparation -------------------------------------------------------------------------

    def _prepare(self) -> None:
        # Blobs arrive in parallel threads; the first one creates the layout, once.
        with self._prepare_lock:
            self._prepare_once()

    def _prepare_once(self) -> None:
        if self._prepared:
            return
        if self.path.exists() and not self.path.is_dir():
            raise ClientError(f"{self.describe()}: {self.path} exists and is not a directory")
        if not self.path.exists():
            highest = self.path
            while not highest.parent.exists():
                highest = highest.parent
            self.path.mkdir(parents=True)
            self._created = highest
        marker = self.path / "oci-layout"
        if marker.exists():
            try:
                version = json.loads(marker.read_bytes()).get("imageLayoutVersion")
            except (ValueError, AttributeError) as exc:
                raise ClientError(f"{self.describe()}: oci-layout is not valid JSON") from exc
            if not isinstance(version, str) or not version.startswith("1."):
                raise ClientError(f"{self.describe()}: unsupported layout version {version!r}")
        else:
            write_atomic(marker, OCI_LAYOUT_BODY, fsync=self.fsync)
        self._prepared = True

    def _blob_path(self, digest: str) -> Path:
        return self.path / blob_relpath(digest)

    # -- blobs -------------------------------------------------------------------------------

    async def has_blob(self, descriptor: Descriptor) -> bool:
        path = self._blob_path(descriptor.digest)
        try:
            return path.stat().st_size == descriptor.size
        except OSError:
            return False

    async def mount_blob(self, descriptor: Descriptor, source: ImageSource) -> str | None:
        return None

    async def put_blob(
        self, descriptor: Descriptor, opener: BlobOpener, progress: ProgressCallback | None = None
    ) -> None:
        final = self._blob_path(descriptor.digest)
        await asyncio.to_thread(self._prepare)
        if await self.has_blob(descriptor):
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.path, prefix=".dockyard-blob-")
        tmp = Path(name)
        self._temps.add(tmp)
        try:
            with os.fdopen(fd, "wb") as handle:
                await receive_blob(descriptor, opener, progress, handle.write)
                if self.fsync:
                    await asyncio.to_thread(os.fsync, handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
            if self.fsync:
                fsync_dir(final.parent)
        finally:
            tmp.unlink(missing_ok=True)
            self._temps.discard(tmp)

    # -- manifests and the index -------------------------------------------------------------

    async def put_manifest(self, manifest: Manifest, tag: str | None) -> str:
        """Store the manifest as a blob; the last one put before commit() gets the entry."""
        verify_manifest(manifest)
        await asyncio.to_thread(self._prepare)
        final = self._blob_path(manifest.digest)
        if not (final.is_file() and final.stat().st_size == len(manifest.body)):
            final.parent.mkdir(parents=True, exist_ok=True)
            await asyncio.to_thread(write_atomic, final, manifest.body, fsync=self.fsync)
        self._top = (manifest, check_tag(tag) if tag is not None else self.tag)
        return manifest.digest

    def _missing(self, manifest: Manifest) -> list[str]:
        """What the manifest (and its children) name that the layout lacks."""
        missing: list[str] = []
        parsed = parse(manifest)
        for child in parsed.children:
            path = self._blob_path(child.digest)
            if not path.is_file():
                missing.append(child.digest)
                continue
            body = path.read_bytes()
            missing += self._missing(Manifest(body, child.media_type, child.digest))
        for blob in parsed.blobs:
            if blob.is_foreign:
                continue
            path = self._blob_path(blob.digest)
            if not path.is_file() or path.stat().st_size != blob.size:
                missing.append(blob.digest)
        return missing

    def _write_index(self) -> None:
        assert self._top is not None
        manifest, tag = self._top
        missing = self._missing(manifest)
        if missing:
            raise ClientError(
                f"{self.describe()}: not committing, the image is incomplete; "
                f"missing {', '.join(missing[:5])}"
            )
        entry: dict[str, Any] = {
            "mediaType": manifest.media_type,
            "digest": manifest.digest,
            "size": len(manifest.body),
        }
        if tag is not None:
            entry["annotations"] = {REF_NAME: tag}
        with open(self.path / "oci-layout", "rb") as lock:
            # Two copies into the same layout must not lose each other's entries.
            file_lock.lock(lock.fileno())
            index_path = self.path / "index.json"
            try:
                index = json.loads(index_path.read_bytes())
            except FileNotFoundError:
                index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}
            except ValueError as exc:
                raise ClientError(
                    f"{self.describe()}: the existing index.json is not valid "
                    "JSON; not overwriting it"
                ) from exc
            if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
                raise ClientError(
                    f"{self.describe()}: the existing index.json has no manifests "
                    "list; not overwriting it"
                )
            index["manifests"] = updated_entries(index.get("manifests", []), entry, tag)
            write_atomic(index_path, compact_json(index), fsync=self.fsync)

    async def commit(self) -> None:
        if self._top is None:
            raise ClientError(f"{self.describe()}: nothing to commit (no manifest was written)")
        await asyncio.to_thread(self._write_index)
        self._committed = True

    async def close(self) -> None:
        for tmp in list(self._temps):
            tmp.unlink(missing_ok=True)
        self._temps.clear()
        if self._created is not None and not self._committed:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(shutil.rmtree, self._created)
            self._created = None


def updated_entries(entries: list[Any], entry: dict[str, Any], tag: str | None) -> list[Any]:
    """index.json's manifests with `entry` added: a tag moves (the old entry holding it is
    replaced), an untagged entry of the same digest is absorbed, everything else is kept."""
    digest = entry["digest"]
    if tag is None:
        if any(isinstance(e, dict) and e.get("digest") == digest for e in entries):
            return list(entries)
        return [*entries, entry]
    kept = [
        e
        for e in entries
        if not (
            isinstance(e, dict)
            and (entry_tag(e) == tag or (e.get("digest") == digest and entry_tag(e) is None))
        )
    ]
    return [*kept, entry]
