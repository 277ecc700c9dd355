"""Images in tarballs: `oci-archive:PATH[:TAG]` and `docker-archive:PATH[:REF]`.

* An oci-archive is a tar of an OCI layout. It is read in place (members by offset) and written
  by building a layout in a temporary folder next to PATH, tarred at commit and renamed over
  PATH, so PATH holds the old archive or the complete new one. As with skopeo, writing replaces
  the whole archive.
* A docker-archive is what `docker save` writes: `manifest.json` (Config, RepoTags, Layers),
  the config, one uncompressed tar per layer, and `repositories`; Docker 25+ puts the same
  files inside an OCI layout. As a source it yields a Docker schema 2 manifest built from the
  config and the layer files, the layer media types saying what the files are; as a destination
  it decompresses gzip layers (the format holds uncompressed tars, whose digests are the
  config's diff_ids) and writes the legacy per-layer folders docker and skopeo write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dockyard.client.blobio import (
    CHUNK,
    GZIP_MAGIC,
    TarTree,
    Tree,
    fsync_dir,
    parse_digest,
    receive_blob,
    sniff_compression,
)
from dockyard.client.errors import ClientError, DigestMismatch, NotFound
from dockyard.client.image import BlobOpener, ImageSource, Manifest, ProgressCallback
from dockyard.client.layout import (
    LayoutReader,
    OCILayoutDestination,
    check_tag,
    compact_json,
    verify_manifest,
)
from dockyard.core import mediatypes as mt
from dockyard.core.manifest import Descriptor
from dockyard.core.reference import ImageReference, InvalidReference, parse_reference

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
LAYER_TYPES = {None: DOCKER_LAYER, "gzip": DOCKER_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}


def _check_parent(path: Path, label: str) -> None:
    """skopeo refuses a PATH whose folder is missing; so do we, rather than guess."""
    if not path.parent.is_dir():
        raise ClientError(f"{label}: folder {path.parent} does not exist")
    if path.is_dir():
        raise ClientError(f"{label}: {path} is a directory")


# ---------------------------------------------------------------------------------------------
# writing tarballs


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One member to write: a file from disk, bytes, a folder, or a symlink."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    link: str | None = None

    @property
    def is_dir(self) -> bool:
        return self.path is None and self.data is None and self.link is None


def write_tar(target: Path, entries: Iterable[TarEntry], *, fsync: bool = True) -> None:
    """Write a reproducible tar (owner root, mtime 0) to a temp file, then rename it to
    `target`: readers see the previous file or the complete new one."""
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for entry in entries:
                    info = tarfile.TarInfo(entry.name)
                    info.mtime = 0
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    if entry.is_dir:
                        info.type, info.mode = tarfile.DIRTYPE, 0o755
                        tar.addfile(info)
                    elif entry.link is not None:
                        info.type, info.mode, info.linkname = tarfile.SYMTYPE, 0o777, entry.link
                        tar.addfile(info)
                    elif entry.data is not None:
                        info.mode, info.size = 0o644, len(entry.data)
                        tar.addfile(info, io.BytesIO(entry.data))
                    else:
                        assert entry.path is not None
                        info.mode, info.size = 0o644, entry.path.stat().st_size
                        with open(entry.path, "rb") as src:
                            tar.addfile(info, src)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if fsync:
        fsync_dir(target.parent)


def layout_entries(root: Path) -> list[TarEntry]:
    """An OCI layout's files in the order skopeo tars them: blobs, then index.json, oci-layout."""
    entries: list[TarEntry] = []
    for folder in sorted(p for p in (root / "blobs").rglob("*") if p.is_dir()):
        entries.append(TarEntry(folder.relative_to(root).as_posix()))
        entries += [
            TarEntry(f.relative_to(root).as_posix(), path=f)
            for f in sorted(folder.iterdir())
            if f.is_file()
        ]
    entries.insert(0, TarEntry("blobs"))
    entries += [
        TarEntry("index.json", path=root / "index.json"),
        TarEntry("oci-layout", path=root / "oci-layout"),
    ]
    return entries


# ---------------------------------------------------------------------------------------------
# oci-archive


class OCIArchiveSource(LayoutReader):
    """`oci-archive:PATH[:TAG]` as a source, read in place."""

    transport = "oci-archive"

    def _open_tree(self) -> Tree:
        return TarTree(self.path)


class OCIArchiveDestination:
    """`oci-archive:PATH[:TAG]` as a destination: a layout built next to PATH, tarred at commit.

    Like skopeo, the archive is replaced as a whole: it holds exactly the image written.
    """

    accepts_index = True

    def __init__(self, path: Path | str, tag: str | None = None, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.tag = check_tag(tag)
        self.fsync = fsync
        self._workdir: Path | None = None
        self._layout: OCILayoutDestination | None = None

    def describe(self) -> str:
        return f"oci-archive:{self.path}" + (f":{self.tag}" if self.tag else "")

    def _inner(self) -> OCILayoutDestination:
        if self._layout is None:
            _check_parent(self.path, self.describe())
            self._workdir = Path(
                tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            )
            # The tarball is synced once at commit; the scratch layout need not be.
            self._layout = OCILayoutDestination(self._workdir / "layout", self.tag, fsync=False)
        return self._layout

    async def has_blob(self, descriptor: Descriptor) -> bool:
        return self._layout is not None and await self._layout.has_blob(descriptor)

    async def mount_blob(self, descriptor: Descriptor, source: ImageSource) -> str | None:
        return None

    async def put_blob(
        self, descriptor: Descriptor, opener: BlobOpener, progress: ProgressCallback | None = None
    ) -> None:
        await self._inner().put_blob(descriptor, opener, progress)

    async def put_manifest(self, manifest: Manifest, tag: str | None) -> str:
        return await self._inner().put_manifest(manifest, tag)

    async def commit(self) -> None:
        layout = self._inner()
        await layout.commit()
        await asyncio.to_thread(write_tar, self.path, layout_entries(layout.path), fsync=self.fsync)

    async def close(self) -> None:
        if self._layout is not None:
            await self._layout.close()
        if self._workdir is not None:
            await asyncio.to_thread(shutil.rmtree, self._workdir, True)
            self._workdir = None
            self._layout = None


# ---------------------------------------------------------------------------------------------
# docker-archive: reading


def _parse_ref(text: str, label: str) -> ImageReference:
    try:
        return parse_reference(text)
    except InvalidReference as exc:
        raise ClientError(f"{label}: {exc}") from exc


class DockerArchiveSource:
    """`docker-archive:PATH[:REF]`: REF picks an image by one of its RepoTags, or `@N` by
    position; without REF the archive must hold one image."""

    def __init__(self, path: Path | str, ref: str | None = None) -> None:
        self.path = Path(path)
        self.ref = ref
        self._tree: TarTree | None = None
        self._manifest: Manifest | None = None
        self._members: dict[str, str] = {}  # digest -> member name

    def describe(self) -> str:
        return f"docker-archive:{self.path}" + (f":{self.ref}" if self.ref else "")

    def _choose(self, entries: list[Any]) -> dict[str, Any]:
        label = self.describe()
        if not entries or not all(isinstance(e, dict) for e in entries):
            raise ClientError(f"{label}: manifest.json lists no images")
        if self.ref is None:
            if len(entries) == 1:
                return entries[0]
            tags = [t for e in entries for t in e.get("RepoTags") or []]
            raise ClientError(
                f"{label}: the archive holds {len(entries)} images; name one "
                f"(docker-archive:PATH:REF or :@N): {', '.join(tags)}"
            )
        if self.ref.startswith("@"):
            try:
                return entries[int(self.ref[1:])]
            except (ValueError, IndexError) as exc:
                raise NotFound(
                    f"{label}: no image {self.ref}; the archive holds {len(entries)}"
                ) from exc
        wanted = _parse_ref(self.ref, label)
        for entry in entries:
            for tag in entry.get("RepoTags") or []:
                with contextlib.suppress(InvalidReference):
                    if parse_reference(tag) == wanted:
                        return entry
        tags = [t for e in entries for t in e.get("RepoTags") or []]
        raise NotFound(f"{label}: no image tagged {self.ref}; tags: {', '.join(tags) or '(none)'}")

    def _member_digest(self, tree: TarTree, name: str) -> str:
        hasher = hashlib.sha256()
        member = tree.resolve(name)
        if member is None:
            raise NotFound(f"{self.describe()}: the archive has no file {name}")
        with open(tree.path, "rb") as handle:
            handle.seek(member.offset_data)
            remaining = member.size
            while remaining:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    raise ClientError(f"{self.describe()}: {name} is truncated")
                hasher.update(chunk)
                remaining -= len(chunk)
        return "sha256:" + hasher.hexdigest()

    def _load(self) -> tuple[TarTree, Manifest]:
        tree = TarTree(self.path)
        try:
            label = self.describe()
            try:
                entries = json.loads(tree.read_bytes("manifest.json"))
            except NotFound as exc:
                raise ClientError(f"{label}: not a docker save archive (no manifest.json)") from exc
            except ValueError as exc:
                raise ClientError(f"{label}: manifest.json is not valid JSON") from exc
            entry = self._choose(entries if isinstance(entries, list) else [])
            config_name, layer_names = entry.get("Config"), entry.get("Layers") or []
            if not isinstance(config_name, str) or not isinstance(layer_names, list):
                raise ClientError(f"{label}: manifest.json entry lacks Config or Layers")
            config = tree.read_bytes(config_name)
            try:
                diff_ids = json.loads(config)["rootfs"]["diff_ids"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ClientError(f"{label}: {config_name} is not an image config") from exc
            trust_diff_ids = isinstance(diff_ids, list) and len(diff_ids) == len(layer_names)
            config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
            self._members = {config_digest: config_name}
            layers = []
            for n, name in enumerate(layer_names):
                size = tree.size(name)
                if size is None:
                    raise NotFound(f"{label}: the archive has no layer file {name}")
                with open(tree.path, "rb") as handle:
                    member = tree.resolve(name)
                    assert member is not None
                    handle.seek(member.offset_data)
                    compression = sniff_compression(handle.read(min(4, size)))
                # An uncompressed layer's digest is its diff_id, which the destination
                # verifies as it writes; a compressed one has to be read to be named.
                if (
                    compression is None
                    and trust_diff_ids
                    and parse_digest(diff_ids[n]).algorithm == "sha256"
                ):
                    digest = diff_ids[n]
                else:
                    digest = self._member_digest(tree, name)
                self._members[digest] = name
                layers.append(
                    {"mediaType": LAYER_TYPES[compression], "size": size, "digest": digest}
                )
            # Field order and spacing as skopeo serialises it, so that an archive of gzip
            # layers gets the manifest digest skopeo reports.
            doc = {
                "schemaVersion": 2,
                "mediaType": mt.DOCKER_MANIFEST,
                "config": {
                    "mediaType": mt.DOCKER_CONFIG,
                    "size": len(config),
                    "digest": config_digest,
                },
                "layers": layers,
            }
            body = compact_json(doc)
            manifest = Manifest(
                body, mt.DOCKER_MANIFEST, "sha256:" + hashlib.sha256(body).hexdigest()
            )
            return tree, manifest
        except BaseException:
            tree.close()
            raise

    async def _ready(self) -> tuple[TarTree, Manifest]:
        if self._tree is None or self._manifest is None:
            self._tree, self._manifest = tree, manifest = await asyncio.to_thread(self._load)
            return tree, manifest
        return self._tree, self._manifest

    async def get_manifest(self, reference: str | None = None) -> Manifest:
        _, manifest = await self._ready()
        if reference not in (None, manifest.digest, self.ref):
            raise NotFound(
                f"{self.describe()}: no manifest {reference}; a docker-archive "
                f"image has only {manifest.digest}"
            )
        return manifest

    async def open_blob(self, descriptor: Descriptor, offset: int = 0) -> AsyncIterator[bytes]:
        tree, _ = await self._ready()
        name = self._members.get(descriptor.digest)
        if name is None:
            raise NotFound(f"{self.describe()}: no blob {descriptor.digest}")
        async for chunk in tree.open(name, offset):
            yield chunk

    async def close(self) -> None:
        if self._tree is not None:
            self._tree.close()
            self._tree = None


# ---------------------------------------------------------------------------------------------
# docker-archive: writing


class _Intake:
    """Receives a blob's bytes: kept as they are, or inflated when they are gzip, hashing what
    is kept so an inflated layer is named by its diff_id."""

    def __init__(self, handle: io.BufferedWriter) -> None:
        self.handle = handle
        self.kept = hashlib.sha256()
        self.compression: str | None = None
        self._head = b""
        self._decided = False
        self._inflater: Any = None
        self._trailing = False
        self._error: str | None = None

    def _keep(self, data: bytes) -> None:
        if data:
            self.kept.update(data)
            self.handle.write(data)

    def write(self, chunk: bytes) -> None:
        if not self._decided:
            self._head += chunk
            if len(self._head) < 4:
                return
            chunk, self._head = self._head, b""
            self._decide(chunk)
        if self.compression == "gzip":
            self._inflate(chunk)
        else:
            self._keep(chunk)

    def _decide(self, head: bytes) -> None:
        self._decided = True
        self.compression = sniff_compression(head)
        if self.compression == "gzip":
            self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def _inflate(self, data: bytes) -> None:
        while data and not self._trailing and self._error is None:
            try:
                out = self._inflater.decompress(data, CHUNK)
            except zlib.error as exc:
                # Keep hashing: a wrong digest is the better report, checked first.
                self._error = str(exc)
                return
            self._keep(out)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:
                rest = self._inflater.unused_data + data
                if not rest:
                    return
                if not rest.startswith(GZIP_MAGIC[: len(rest)]):
                    self._trailing = True  # padding after the last member, as gzip ignores
                    return
                self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                data = rest

    def finish(self) -> None:
        if not self._decided:
            head, self._head = self._head, b""
            self._decide(head)
            if self.compression != "gzip":
                self._keep(head)
                return
            self._inflate(head)
        if self.compression == "gzip" and self._error is None and not self._trailing:
            self._keep(self._inflater.flush())
            if not self._inflater.eof:
                self._error = "the gzip stream ends early"
        if self._error is not None:
            raise ClientError(f"a gzip layer cannot be unpacked: {self._error}")

    @property
    def digest(self) -> str:
        return "sha256:" + self.kept.hexdigest()


@dataclass(frozen=True, slots=True)
class _Stored:
    path: Path
    kept_digest: str  # of the stored bytes: the diff_id when the blob is a layer
    compression: str | None  # what the received blob was


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The image spec's ChainIDs, used as the ids of the legacy per-layer folders."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append(
                "sha256:" + hashlib.sha256(f"{chains[-1]} {diff_id}".encode()).hexdigest()
            )
    return chains


class DockerArchiveDestination:
    """`docker-archive:PATH[:REF]` as a destination: one single-platform image, RepoTags from REF.

    An existing PATH is replaced at commit (as `docker save -o` does; skopeo refuses instead).
    """

    accepts_index = False

    def __init__(self, path: Path | str, ref: str | None = None, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.ref = None
        if ref is not None:
            self.ref = _parse_ref(ref, f"docker-archive:{self.path}:{ref}")
            if self.ref.digest:
                raise ClientError(
                    f"docker-archive:{self.path}:{ref}: a docker-archive names "
                    "images by tag, not by digest"
                )
        self._workdir: Path | None = None
        self._stored: dict[str, _Stored] = {}
        self._top: Manifest | None = None

    def describe(self) -> str:
        return f"docker-archive:{self.path}" + (f":{self.ref.familiar}" if self.ref else "")

    def _dir(self) -> Path:
        if self._workdir is None:
            _check_parent(self.path, self.describe())
            self._workdir = Path(
                tempfile.mkdtemp(dir=self.path.parent, prefix=f".{self.path.name}.")
            )
        return self._workdir

    async def has_blob(self, descriptor: Descriptor) -> bool:
        return descriptor.digest in self._stored

    async def mount_blob(self, descriptor: Descriptor, source: ImageSource) -> str | None:
        return None

    async def put_blob(
        self, descriptor: Descriptor, opener: BlobOpener, progress: ProgressCallback | None = None
    ) -> None:
        if descriptor.digest in self._stored:
            return
        target = self._dir() / parse_digest(descriptor.digest).hex
        with open(target, "wb") as handle:
            intake = _Intake(handle)
            try:
                await receive_blob(descriptor, opener, progress, intake.write)
                await asyncio.to_thread(intake.finish)
            except BaseException:
                handle.close()
                target.unlink(missing_ok=True)
                raise
        self._stored[descriptor.digest] = _Stored(target, intake.digest, intake.compression)

    async def put_manifest(self, manifest: Manifest, tag: str | None) -> str:
        if manifest.is_index:
            raise ClientError(
                f"{self.describe()}: a docker-archive holds a single-platform "
                "image, not an index; choose one platform (--platform os/arch)"
            )
        if manifest.media_type not in mt.IMAGE_MANIFESTS:
            raise ClientError(f"{self.describe()}: cannot store a {manifest.media_type} manifest")
        verify_manifest(manifest)
        self._top = manifest
        return manifest.digest

    def _entries(self) -> list[TarEntry]:
        assert self._top is not None
        doc = self._top.json()
        config_desc = doc.get("config") or {}
        config_stored = self._stored.get(config_desc.get("digest", ""))
        if config_stored is None:
            raise ClientError(
                f"{self.describe()}: config {config_desc.get('digest')} was not written"
            )
        config_bytes = config_stored.path.read_bytes()
        config = json.loads(config_bytes)
        declared = (config.get("rootfs") or {}).get("diff_ids") or []
        layer_names: list[str] = []
        diff_ids: list[str] = []
        entries: list[TarEntry] = []
        for n, layer in enumerate(doc.get("layers") or []):
            stored = self._stored.get(layer.get("digest", ""))
            if stored is None:
                raise ClientError(f"{self.describe()}: layer {layer.get('digest')} was not written")
            if stored.compression == "zstd":
                raise ClientError(
                    f"{self.describe()}: layer {layer['digest']} is zstd; docker "
                    "archives hold uncompressed or gzip layers only"
                )
            diff_id = stored.kept_digest
            if n < len(declared) and declared[n] != diff_id:
                raise DigestMismatch(
                    f"{self.describe()}: layer {layer['digest']} unpacks to "
                    f"{diff_id}, the config says {declared[n]}"
                )
            name = diff_id.removeprefix("sha256:") + ".tar"
            if name not in layer_names:
                entries.append(TarEntry(name, path=stored.path))
            layer_names.append(name)
            diff_ids.append(diff_id)
        config_name = parse_digest(config_desc["digest"]).hex + ".json"
        chains = chain_ids(diff_ids)
        parent = ""
        for n, (chain, name) in enumerate(zip(chains, layer_names, strict=True)):
            legacy = chain.removeprefix("sha256:")
            v1: dict[str, Any] = {"id": legacy}
            if parent:
                v1["parent"] = parent
            if n == len(chains) - 1:
                v1.update(
                    {
                        k: config[k]
                        for k in ("architecture", "os", "created", "config")
                        if k in config
                    }
                )
            entries += [
                TarEntry(legacy),
                TarEntry(f"{legacy}/VERSION", data=b"1.0"),
                TarEntry(f"{legacy}/json", data=compact_json(v1)),
                TarEntry(f"{legacy}/layer.tar", link=f"../{name}"),
            ]
            parent = legacy
        repo_tags = [self.ref.familiar] if self.ref else []
        repositories: dict[str, dict[str, str]] = {}
        if self.ref and parent:
            repo = self.ref.familiar.rsplit(":", 1)[0]
            repositories[repo] = {self.ref.tag or "latest": parent}
        entries += [
            TarEntry(config_name, data=config_bytes),
            TarEntry(
                "manifest.json",
                data=compact_json(
                    [{"Config": config_name, "RepoTags": repo_tags, "Layers": layer_names}]
                ),
            ),
            TarEntry("repositories", data=compact_json(repositories)),
        ]
        return entries

    def _write(self) -> None:
        write_tar(self.path, self._entries(), fsync=self.fsync)

    async def commit(self) -> None:
        if self._top is None:
            raise ClientError(f"{self.describe()}: nothing to commit (no manifest was written)")
        await asyncio.to_thread(self._write)

    async def close(self) -> None:
        if self._workdir is not None:
            await asyncio.to_thread(shutil.rmtree, self._workdir, True)
            self._workdir = None
        self._stored.clear()
