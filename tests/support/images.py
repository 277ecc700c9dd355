"""Deterministic, pure-Python builders of container images on disk.

Everything here is a function of its arguments and a seed: the same call writes the same bytes, so
tests can compare the digests a peer tool reports with the ones returned here.

* `write_oci_image`: an OCI image layout holding one single-platform image (config + gzip layers).
* `write_oci_index`: an OCI image layout holding an image index with one image per platform.
* `write_docker_archive`: a `docker save` style tarball (manifest.json, repositories, <id>.json,
  <layer>/layer.tar).
* `read_layout_*`: read back what a peer wrote into an OCI layout.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_LAYOUT_VERSION = "1.0.0"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
REF_NAME = "org.opencontainers.image.ref.name"

# A fixed timestamp keeps configs and tar headers reproducible.
EPOCH_ISO = "2024-01-01T00:00:00Z"
EPOCH = 1704067200

DEFAULT_PLATFORMS: tuple[tuple[str, str], ...] = (("linux", "amd64"), ("linux", "arm64"))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """The one serialisation used for every manifest/config written here (insertion order)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def to_json(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass
class Layer:
    """One layer: `digest`/`size` of the gzip blob, `diff_id` of the uncompressed tar."""

    digest: str
    size: int
    diff_id: str
    files: dict[str, bytes]  # path inside the image -> content
    compressed: bytes = field(repr=False)
    tar: bytes = field(repr=False)


@dataclass
class BuiltImage:
    """A single-platform image written to an OCI layout."""

    layout: Path
    ref: str | None  # the ref.name it is tagged with in index.json (None for index children)
    os: str
    architecture: str
    manifest_digest: str
    manifest_bytes: bytes = field(repr=False)
    config_digest: str
    config_bytes: bytes = field(repr=False)
    layers: list[Layer]

    @property
    def layer_digests(self) -> list[str]:
        return [layer.digest for layer in self.layers]

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    @property
    def blob_digests(self) -> list[str]:
        """Every blob the manifest references (config first)."""
        return [self.config_digest, *self.layer_digests]

    @property
    def files(self) -> dict[str, bytes]:
        """The merged filesystem (later layers win)."""
        merged: dict[str, bytes] = {}
        for layer in self.layers:
            merged.update(layer.files)
        return merged

    @property
    def platform(self) -> str:
        return f"{self.os}/{self.architecture}"


@dataclass
class BuiltIndex:
    """A multi-platform image index written to an OCI layout."""

    layout: Path
    ref: str
    index_digest: str
    index_bytes: bytes = field(repr=False)
    children: list[BuiltImage]

    def child(self, architecture: str) -> BuiltImage:
        for image in self.children:
            if image.architecture == architecture:
                return image
        raise KeyError(architecture)

    @property
    def manifest_digests(self) -> list[str]:
        return [child.manifest_digest for child in self.children]

    @property
    def blob_digests(self) -> list[str]:
        return [digest for child in self.children for digest in child.blob_digests]


@dataclass
class DockerArchive:
    """A `docker save` tarball; `image_id` is the digest of its config."""

    path: Path
    repo_tag: str
    image_id: str
    config_bytes: bytes = field(repr=False)
    diff_ids: list[str]
    layer_tars: list[bytes] = field(repr=False)
    files: dict[str, bytes] = field(repr=False)


# ---------------------------------------------------------------------------------------------
# tar and gzip, reproducibly


def _tar_bytes(files: dict[str, bytes], dirs: list[str] | None = None) -> bytes:
    """An uncompressed tar of `files`, entries sorted, owner root, fixed mtime and modes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        wanted_dirs = set(dirs or [])
        for path in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                wanted_dirs.add("/".join(parts[:i]))
        entries: list[tuple[str, bytes | None]] = [(d, None) for d in wanted_dirs]
        entries += list(files.items())
        for name, data in sorted(entries, key=lambda e: e[0]):
            info = tarfile.TarInfo(name)
            info.mtime = EPOCH
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    # mtime=0 and an empty file name keep the gzip header free of time and path.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return buf.getvalue()


def _random_files(rng: random.Random, prefix: str, count: int, size: int) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for i in range(count):
        length = max(1, size + rng.randint(-size // 4, size // 4))
        # Half text (compresses), half random bytes (does not): both kinds of layer content.
        if i % 2 == 0:
            words = [f"{prefix}-{i}-{rng.getrandbits(32):08x}" for _ in range(length // 16 + 1)]
            data = ("\n".join(words) + "\n").encode()[:length]
        else:
            data = rng.randbytes(length)
        files[f"{prefix}/file{i}.{'txt' if i % 2 == 0 else 'bin'}"] = data
    return files


def make_layer(files: dict[str, bytes]) -> Layer:
    tar = _tar_bytes(files)
    compressed = _gzip_bytes(tar)
    return Layer(
        digest=sha256_digest(compressed),
        size=len(compressed),
        diff_id=sha256_digest(tar),
        files=dict(files),
        compressed=compressed,
        tar=tar,
    )


def make_layers(
    seed: int | str, layers: int, files_per_layer: int = 3, file_size: int = 2048
) -> list[Layer]:
    if layers < 1:
        raise ValueError("an image needs at least one layer")
    rng = random.Random(f"dockyard-layers:{seed}")
    return [
        make_layer(_random_files(rng, f"data/layer{n}", files_per_layer, file_size))
        for n in range(layers)
    ]


def image_config(
    os_name: str,
    architecture: str,
    diff_ids: list[str],
    *,
    labels: dict[str, str] | None = None,
    variant: str | None = None,
    seed: int | str = 0,
) -> dict[str, Any]:
    """An OCI/Docker image config (the two formats share these fields)."""
    config: dict[str, Any] = {
        "created": EPOCH_ISO,
        "architecture": architecture,
        "os": os_name,
    }
    if variant:
        config["variant"] = variant
    config["config"] = {
        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
        "Cmd": ["/data/layer0/file0.txt"],
        "WorkingDir": "/",
        "Labels": {"org.dockyard.test.seed": str(seed), **(labels or {})},
    }
    config["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    config["history"] = [
        {"created": EPOCH_ISO, "created_by": f"dockyard-test-builder layer {i}"}
        for i in range(len(diff_ids))
    ]
    return config


# ---------------------------------------------------------------------------------------------
# OCI image layouts


def _init_layout(layout: Path) -> None:
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": OCI_LAYOUT_VERSION}))
    if not (layout / "index.json").exists():
        _write_layout_index(layout, [])


def _write_blob(layout: Path, data: bytes) -> str:
    digest = sha256_digest(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    if not path.exists():
        path.write_bytes(data)
    return digest


def _write_layout_index(layout: Path, manifests: list[dict[str, Any]]) -> None:
    index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": manifests}
    (layout / "index.json").write_bytes(canonical_json(index))


def _tag_in_layout(layout: Path, descriptor: dict[str, Any], ref: str) -> None:
    """Add `descriptor` to index.json under `ref`, replacing an older entry of that name."""
    index = json.loads((layout / "index.json").read_bytes())
    kept = [
        m for m in index.get("manifests", []) if (m.get("annotations") or {}).get(REF_NAME) != ref
    ]
    annotated = {**descriptor, "annotations": {**descriptor.get("annotations", {}), REF_NAME: ref}}
    _write_layout_index(layout, [*kept, annotated])


def _write_image_blobs(
    layout: Path,
    *,
    seed: int | str,
    layers: int,
    files_per_layer: int,
    file_size: int,
    os_name: str,
    architecture: str,
    labels: dict[str, str] | None,
    variant: str | None,
) -> BuiltImage:
    built_layers = make_layers(seed, layers, files_per_layer, file_size)
    config_bytes = canonical_json(
        image_config(
            os_name,
            architecture,
            [layer.diff_id for layer in built_layers],
            labels=labels,
            variant=variant,
            seed=seed,
        )
    )
    config_digest = _write_blob(layout, config_bytes)
    for layer in built_layers:
        _write_blob(layout, layer.compressed)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": Descriptor(MT_OCI_CONFIG, config_digest, len(config_bytes)).to_json(),
        "layers": [
            Descriptor(MT_OCI_LAYER_GZIP, layer.digest, layer.size).to_json()
            for layer in built_layers
        ],
        "annotations": {"org.dockyard.test.seed": str(seed)},
    }
    manifest_bytes = canonical_json(manifest)
    manifest_digest = _write_blob(layout, manifest_bytes)
    return BuiltImage(
        layout=layout,
        ref=None,
        os=os_name,
        architecture=architecture,
        manifest_digest=manifest_digest,
        manifest_bytes=manifest_bytes,
        config_digest=config_digest,
        config_bytes=config_bytes,
        layers=built_layers,
    )


def write_oci_image(
    layout: Path,
    ref: str = "latest",
    *,
    seed: int | str = 0,
    layers: int = 2,
    files_per_layer: int = 3,
    file_size: int = 2048,
    os_name: str = "linux",
    architecture: str = "amd64",
    variant: str | None = None,
    labels: dict[str, str] | None = None,
) -> BuiltImage:
    """Write (or add to) an OCI layout at `layout` one image tagged `ref` in index.json."""
    _init_layout(layout)
    image = _write_image_blobs(
        layout,
        seed=seed,
        layers=layers,
        files_per_layer=files_per_layer,
        file_size=file_size,
        os_name=os_name,
        architecture=architecture,
        labels=labels,
        variant=variant,
    )
    image.ref = ref
    _tag_in_layout(
        layout,
        Descriptor(MT_OCI_MANIFEST, image.manifest_digest, len(image.manifest_bytes)).to_json(),
        ref,
    )
    return image


def write_oci_index(
    layout: Path,
    ref: str = "latest",
    *,
    seed: int | str = 0,
    layers: int = 2,
    files_per_layer: int = 3,
    file_size: int = 2048,
    platforms: tuple[tuple[str, str], ...] = DEFAULT_PLATFORMS,
    labels: dict[str, str] | None = None,
) -> BuiltIndex:
    """Write (or add to) an OCI layout an image index with one image per (os, arch) platform."""
    _init_layout(layout)
    children: list[BuiltImage] = []
    entries: list[dict[str, Any]] = []
    for os_name, arch in platforms:
        child = _write_image_blobs(
            layout,
            seed=f"{seed}/{os_name}/{arch}",
            layers=layers,
            files_per_layer=files_per_layer,
            file_size=file_size,
            os_name=os_name,
            architecture=arch,
            labels=labels,
            variant=None,
        )
        children.append(child)
        entries.append(
            Descriptor(MT_OCI_MANIFEST, child.manifest_digest, len(child.manifest_bytes)).to_json(
                platform={"architecture": arch, "os": os_name}
            )
        )
    index = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_INDEX,
        "manifests": entries,
        "annotations": {"org.dockyard.test.seed": str(seed)},
    }
    index_bytes = canonical_json(index)
    index_digest = _write_blob(layout, index_bytes)
    _tag_in_layout(layout, Descriptor(MT_OCI_INDEX, index_digest, len(index_bytes)).to_json(), ref)
    return BuiltIndex(
        layout=layout,
        ref=ref,
        index_digest=index_digest,
        index_bytes=index_bytes,
        children=children,
    )


def read_layout_index(layout: Path) -> dict[str, Any]:
    return json.loads((layout / "index.json").read_bytes())


def read_layout_ref(layout: Path, ref: str | None = None) -> dict[str, Any]:
    """The index.json descriptor named `ref` (or the only one when `ref` is None)."""
    manifests = read_layout_index(layout)["manifests"]
    if ref is None:
        if len(manifests) != 1:
            raise LookupError(f"{layout}: {len(manifests)} entries in index.json, name one")
        return manifests[0]
    for descriptor in manifests:
        if (descriptor.get("annotations") or {}).get(REF_NAME) == ref:
            return descriptor
    raise LookupError(f"{layout}: no entry named {ref!r} in index.json")


def layout_blob_path(layout: Path, digest: str) -> Path:
    algorithm, hexpart = digest.split(":", 1)
    return layout / "blobs" / algorithm / hexpart


def read_layout_blob(layout: Path, digest: str) -> bytes:
    """A blob from a layout, checked against its digest."""
    data = layout_blob_path(layout, digest).read_bytes()
    if sha256_digest(data) != digest:
        raise ValueError(f"{layout}: blob {digest} does not match its content")
    return data


def layout_blobs(layout: Path) -> dict[str, bytes]:
    """Every sha256 blob in a layout, by digest."""
    return {
        f"sha256:{p.name}": p.read_bytes() for p in sorted((layout / "blobs" / "sha256").iterdir())
    }


def untar_files(tar_bytes: bytes) -> dict[str, bytes]:
    """Regular files of an (optionally gzip-compressed) tar, path -> content."""
    if tar_bytes[:2] == b"\x1f\x8b":
        tar_bytes = gzip.decompress(tar_bytes)
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                out[member.name.removeprefix("./")] = handle.read()
    return out


# ---------------------------------------------------------------------------------------------
# docker save archives


def write_docker_archive(
    path: Path,
    repo_tag: str = "dockyard/test:latest",
    *,
    seed: int | str = 0,
    layers: int = 2,
    files_per_layer: int = 3,
    file_size: int = 2048,
    architecture: str = "amd64",
) -> DockerArchive:
    """Write a `docker save` style tarball (legacy layout, as Docker < 25 wrote it)."""
    built = make_layers(seed, layers, files_per_layer, file_size)
    diff_ids = [layer.diff_id for layer in built]
    config_bytes = canonical_json(image_config("linux", architecture, diff_ids, seed=seed))
    image_id = sha256_digest(config_bytes)

    members: list[tuple[str, bytes | None]] = []
    # Legacy per-layer folders are named by a v1 id chained over the layers below.
    parent = ""
    layer_paths: list[str] = []
    for n, layer in enumerate(built):
        v1_id = hashlib.sha256(f"{parent} {layer.diff_id}".encode()).hexdigest()
        v1_json: dict[str, Any] = {"id": v1_id, "created": EPOCH_ISO, "os": "linux"}
        if parent:
            v1_json["parent"] = parent
        if n == len(built) - 1:
            v1_json["architecture"] = architecture
        members += [
            (v1_id, None),
            (f"{v1_id}/VERSION", b"1.0"),
            (f"{v1_id}/json", canonical_json(v1_json)),
            (f"{v1_id}/layer.tar", layer.tar),
        ]
        layer_paths.append(f"{v1_id}/layer.tar")
        parent = v1_id

    hexid = image_id.split(":", 1)[1]
    repo, _, tag = repo_tag.rpartition(":")
    manifest_json = [{"Config": f"{hexid}.json", "RepoTags": [repo_tag], "Layers": layer_paths}]
    members += [
        (f"{hexid}.json", config_bytes),
        ("manifest.json", canonical_json(manifest_json)),
        ("repositories", canonical_json({repo: {tag: parent}})),
    ]

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = EPOCH
            info.uid = info.gid = 0
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            else:
                info.mode = 0o644
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    files: dict[str, bytes] = {}
    for layer in built:
        files.update(layer.files)
    return DockerArchive(
        path=path,
        repo_tag=repo_tag,
        image_id=image_id,
        config_bytes=config_bytes,
        diff_ids=diff_ids,
        layer_tars=[layer.tar for layer in built],
        files=files,
    )
