"""`oci-archive:` and `docker-archive:` tarballs: round trips, formats old and new, and interop
with skopeo in both directions."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from dockyard.client.archive import (
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DockerArchiveDestination,
    DockerArchiveSource,
    OCIArchiveDestination,
    OCIArchiveSource,
    _Intake,
)
from dockyard.client.errors import ClientError, DigestMismatch, NotFound
from dockyard.client.image import Manifest
from dockyard.client.layout import REF_NAME, OCILayoutDestination, OCILayoutSource
from dockyard.client.local import local_destination, local_source
from dockyard.core import mediatypes as mt
from tests.client.helpers import (
    config_digest,
    copy_image,
    fetch_blob,
    fetch_manifest,
    layer_digests,
)
from tests.support import images
from tests.support.peers import ContainersEnv

MT_OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def write_tar(path: Path, members: list[tuple[str, bytes | None]]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return path


def tar_members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def tar_file(path: Path, name: str) -> bytes:
    with tarfile.open(path) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def gzip_layer_archive(path: Path, repo_tag: str, seed: str) -> tuple[bytes, list[Any]]:
    """A docker-save style archive whose layer files are gzip (as `docker save` of old
    registries' images, or hand-made archives, may hold)."""
    layers = images.make_layers(seed, 2)
    config = images.canonical_json(
        images.image_config("linux", "amd64", [x.diff_id for x in layers], seed=seed)
    )
    hexid = images.sha256_digest(config).split(":")[1]
    names = [f"{x.digest.split(':')[1]}.tar.gz" for x in layers]
    write_tar(
        path,
        [
            *[(name, layer.compressed) for name, layer in zip(names, layers, strict=True)],
            (f"{hexid}.json", config),
            (
                "manifest.json",
                images.canonical_json(
                    [{"Config": f"{hexid}.json", "RepoTags": [repo_tag], "Layers": names}]
                ),
            ),
        ],
    )
    return config, layers


def docker25_archive(path: Path, seed: str, tag: str = "1.0") -> tuple[bytes, list[Any], bytes]:
    """What `docker save` writes since Docker 25: an OCI layout (uncompressed layers) plus
    manifest.json and repositories, both pointing into blobs/."""
    layers = images.make_layers(seed, 2)
    config = images.canonical_json(
        images.image_config("linux", "amd64", [x.diff_id for x in layers], seed=seed)
    )
    cdigest = images.sha256_digest(config)
    manifest = images.canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {"mediaType": mt.OCI_CONFIG, "digest": cdigest, "size": len(config)},
            "layers": [
                {"mediaType": MT_OCI_LAYER_TAR, "digest": x.diff_id, "size": len(x.tar)}
                for x in layers
            ],
        }
    )
    mdigest = images.sha256_digest(manifest)

    def blob(digest: str) -> str:
        return "blobs/sha256/" + digest.split(":")[1]

    index = images.canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [
                {
                    "mediaType": mt.OCI_MANIFEST,
                    "digest": mdigest,
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": f"docker.io/library/app:{tag}",
                        REF_NAME: tag,
                    },
                }
            ],
        }
    )
    write_tar(
        path,
        [
            ("blobs", None),
            ("blobs/sha256", None),
            *[(blob(x.diff_id), x.tar) for x in layers],
            (blob(cdigest), config),
            (blob(mdigest), manifest),
            ("index.json", index),
            (
                "manifest.json",
                images.canonical_json(
                    [
                        {
                            "Config": blob(cdigest),
                            "RepoTags": [f"app:{tag}"],
                            "Layers": [blob(x.diff_id) for x in layers],
                        }
                    ]
                ),
            ),
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ("repositories", images.canonical_json({"app": {tag: layers[-1].diff_id[7:]}})),
        ],
    )
    return config, layers, manifest


def inspect_raw(ce: ContainersEnv, ref: str, *extra: str) -> bytes:
    return ce.skopeo("inspect", "--raw", *extra, ref, text=False).stdout


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ---------------------------------------------------------------------------------------------
# oci-archive


def test_oci_archive_round_trip(tmp_path: Path) -> None:
    idx = images.write_oci_index(tmp_path / "src", "multi", seed="oa-rt")
    archive = tmp_path / "out.tar"
    copy_image(OCILayoutSource(idx.layout, "multi"), OCIArchiveDestination(archive, "m"))
    names = set(tar_members(archive))
    assert {"oci-layout", "index.json", "blobs", "blobs/sha256"} <= names
    assert all(m.mtime == 0 and m.uid == 0 for m in tar_members(archive).values())
    assert leftovers(tmp_path, {"src", "out.tar"}) == []
    top = fetch_manifest(OCIArchiveSource(archive, "m"))
    assert top.digest == idx.index_digest and top.body == idx.index_bytes
    copy_image(OCIArchiveSource(archive, "m"), OCILayoutDestination(tmp_path / "back", "m"))
    assert images.layout_blobs(tmp_path / "back") == images.layout_blobs(idx.layout)


def test_oci_archive_is_reproducible(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="oa-repro")
    copy_image(OCILayoutSource(img.layout), OCIArchiveDestination(tmp_path / "a.tar", "t"))
    copy_image(OCILayoutSource(img.layout), OCIArchiveDestination(tmp_path / "b.tar", "t"))
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_failed_oci_archive_write_keeps_the_old_archive(tmp_path: Path) -> None:
    good = images.write_oci_image(tmp_path / "good", "v1", seed="oa-good")
    archive = tmp_path / "out.tar"
    copy_image(OCILayoutSource(good.layout), OCIArchiveDestination(archive, "v1"))
    before = archive.read_bytes()
    bad = images.write_oci_image(tmp_path / "bad", "v1", seed="oa-bad")
    path = images.layout_blob_path(bad.layout, bad.config_digest)
    path.write_bytes(b"!" + path.read_bytes()[1:])
    with pytest.raises(DigestMismatch):
        copy_image(OCILayoutSource(bad.layout), OCIArchiveDestination(archive, "v1"))
    assert archive.read_bytes() == before
    assert leftovers(tmp_path, {"good", "bad", "out.tar"}) == []


def test_archive_destination_needs_an_existing_folder(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="oa-nodir")
    for dst in (
        OCIArchiveDestination(tmp_path / "no" / "x.tar"),
        DockerArchiveDestination(tmp_path / "no" / "x.tar"),
    ):
        with pytest.raises(ClientError, match="does not exist"):
            copy_image(OCILayoutSource(img.layout), dst)
    assert not (tmp_path / "no").exists()


def test_skopeo_written_oci_archive_reads_identically(ce: ContainersEnv, tmp_path: Path) -> None:
    idx = images.write_oci_index(tmp_path / "src", "multi", seed="oa-sk-w")
    archive = tmp_path / "sk.tar"
    ce.skopeo("copy", "--all", f"oci:{idx.layout}:multi", f"oci-archive:{archive}:m")
    top = fetch_manifest(OCIArchiveSource(archive, "m"))
    assert top.body == idx.index_bytes
    copy_image(OCIArchiveSource(archive), OCILayoutDestination(tmp_path / "ours", "m"))
    assert images.read_layout_ref(tmp_path / "ours", "m")["digest"] == idx.index_digest
    assert images.layout_blobs(tmp_path / "ours") == images.layout_blobs(idx.layout)


def test_skopeo_reads_our_oci_archive_identically(ce: ContainersEnv, tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="oa-sk-r", layers=3)
    idx = images.write_oci_index(tmp_path / "isrc", "multi", seed="oa-sk-ri")
    copy_image(OCILayoutSource(img.layout), OCIArchiveDestination(tmp_path / "img.tar", "v1"))
    copy_image(OCILayoutSource(idx.layout), OCIArchiveDestination(tmp_path / "idx.tar", "m"))
    assert inspect_raw(ce, f"oci-archive:{tmp_path / 'img.tar'}:v1") == img.manifest_bytes
    assert inspect_raw(ce, f"oci-archive:{tmp_path / 'idx.tar'}:m") == idx.index_bytes
    ce.skopeo(
        "copy", "--all", f"oci-archive:{tmp_path / 'idx.tar'}:m", f"oci:{tmp_path / 'again'}:m"
    )
    assert images.read_layout_ref(tmp_path / "again", "m")["digest"] == idx.index_digest
    assert images.layout_blobs(tmp_path / "again") == images.layout_blobs(idx.layout)


# ---------------------------------------------------------------------------------------------
# docker-archive as a source


def test_legacy_docker_archive_source(tmp_path: Path) -> None:
    archive = images.write_docker_archive(
        tmp_path / "d.tar", "dockyard/app:2.0", seed="da", layers=3
    )
    manifest = fetch_manifest(DockerArchiveSource(archive.path))
    doc = manifest.json()
    assert manifest.media_type == mt.DOCKER_MANIFEST == doc["mediaType"]
    assert doc["config"] == {
        "mediaType": mt.DOCKER_CONFIG,
        "size": len(archive.config_bytes),
        "digest": archive.image_id,
    }
    assert [x["mediaType"] for x in doc["layers"]] == [DOCKER_LAYER] * 3
    assert layer_digests(manifest) == archive.diff_ids
    assert [x["size"] for x in doc["layers"]] == [len(t) for t in archive.layer_tars]
    assert (
        fetch_blob(DockerArchiveSource(archive.path), archive.diff_ids[1], 0)
        == archive.layer_tars[1]
    )
    assert (
        fetch_blob(DockerArchiveSource(archive.path), archive.image_id, 0) == archive.config_bytes
    )


def test_docker_archive_ref_selection(tmp_path: Path) -> None:
    a = images.write_docker_archive(tmp_path / "a.tar", "dockyard/a:1", seed="sel-a")
    b = images.write_docker_archive(tmp_path / "b.tar", "dockyard/b:1", seed="sel-b")
    members: list[tuple[str, bytes | None]] = []
    entries: list[Any] = []
    for part in (a, b):
        with tarfile.open(part.path) as tar:
            for m in tar.getmembers():
                if m.name == "manifest.json":
                    entries += json.loads(tar.extractfile(m).read())  # type: ignore[union-attr]
                elif m.name != "repositories" and m.name not in dict(members):
                    members.append((m.name, None if m.isdir() else tar.extractfile(m).read()))  # type: ignore[union-attr]
    both = write_tar(
        tmp_path / "both.tar", [*members, ("manifest.json", images.canonical_json(entries))]
    )
    with pytest.raises(ClientError, match="dockyard/a:1, dockyard/b:1"):
        fetch_manifest(DockerArchiveSource(both))
    assert config_digest(fetch_manifest(DockerArchiveSource(both, "dockyard/b:1"))) == b.image_id
    assert (
        config_digest(fetch_manifest(DockerArchiveSource(both, "docker.io/dockyard/a:1")))
        == a.image_id
    )
    assert config_digest(fetch_manifest(DockerArchiveSource(both, "@1"))) == b.image_id
    with pytest.raises(NotFound, match="dockyard/a:1"):
        fetch_manifest(DockerArchiveSource(both, "dockyard/c:1"))
    with pytest.raises(NotFound):
        fetch_manifest(DockerArchiveSource(both, "@2"))


def test_gzip_layers_are_named_for_what_they_are(tmp_path: Path) -> None:
    config, layers = gzip_layer_archive(tmp_path / "g.tar", "dockyard/g:1", "gz")
    manifest = fetch_manifest(DockerArchiveSource(tmp_path / "g.tar"))
    assert [x["mediaType"] for x in manifest.json()["layers"]] == [DOCKER_LAYER_GZIP] * 2
    assert layer_digests(manifest) == [x.digest for x in layers]
    assert config_digest(manifest) == images.sha256_digest(config)


def test_compressed_docker_archive_is_read(tmp_path: Path) -> None:
    archive = images.write_docker_archive(tmp_path / "d.tar", "dockyard/app:1", seed="dz")
    (tmp_path / "d.tar.gz").write_bytes(gzip.compress(archive.path.read_bytes()))
    copy_image(
        DockerArchiveSource(tmp_path / "d.tar.gz"), OCILayoutDestination(tmp_path / "out", "x")
    )
    blobs = images.layout_blobs(tmp_path / "out")
    assert blobs[archive.image_id] == archive.config_bytes
    assert [blobs[d] for d in archive.diff_ids] == archive.layer_tars


def test_docker25_archive_reads_as_docker_and_as_oci_archive(tmp_path: Path) -> None:
    config, layers, oci_manifest = docker25_archive(tmp_path / "d25.tar", "d25")
    manifest = fetch_manifest(DockerArchiveSource(tmp_path / "d25.tar", "app:1.0"))
    assert manifest.media_type == mt.DOCKER_MANIFEST
    assert config_digest(manifest) == images.sha256_digest(config)
    assert layer_digests(manifest) == [x.diff_id for x in layers]
    assert [x["mediaType"] for x in manifest.json()["layers"]] == [DOCKER_LAYER] * 2
    # The same file is an OCI layout in a tar: as oci-archive it yields docker's own manifest.
    as_oci = fetch_manifest(OCIArchiveSource(tmp_path / "d25.tar", "1.0"))
    assert as_oci.body == oci_manifest


# ---------------------------------------------------------------------------------------------
# docker-archive as a destination


def test_docker_archive_destination_writes_docker_save_format(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="dd", layers=3)
    out = tmp_path / "out.tar"
    copy_image(OCILayoutSource(img.layout), DockerArchiveDestination(out, "myname/app:1.0"))
    members = tar_members(out)
    config_name = img.config_digest.split(":")[1] + ".json"
    layer_names = [d.split(":")[1] + ".tar" for d in img.diff_ids]
    assert json.loads(tar_file(out, "manifest.json")) == [
        {"Config": config_name, "RepoTags": ["myname/app:1.0"], "Layers": layer_names}
    ]
    assert tar_file(out, config_name) == img.config_bytes
    assert [tar_file(out, n) for n in layer_names] == [x.tar for x in img.layers]
    repositories = json.loads(tar_file(out, "repositories"))
    top = repositories["myname/app"]["1.0"]
    assert members[f"{top}/layer.tar"].issym()
    assert json.loads(tar_file(out, f"{top}/json"))["os"] == "linux"
    assert leftovers(tmp_path, {"src", "out.tar"}) == []
    # And back: the schema 2 manifest names the config and the uncompressed layers.
    back = fetch_manifest(DockerArchiveSource(out, "myname/app:1.0"))
    assert config_digest(back) == img.config_digest
    assert layer_digests(back) == img.diff_ids


def test_docker_archive_round_trip_keeps_digests(tmp_path: Path) -> None:
    archive = images.write_docker_archive(tmp_path / "d.tar", "dockyard/app:2", seed="drt")
    first = fetch_manifest(DockerArchiveSource(archive.path))
    copy_image(
        DockerArchiveSource(archive.path),
        DockerArchiveDestination(tmp_path / "o.tar", "dockyard/app:2"),
    )
    second = fetch_manifest(DockerArchiveSource(tmp_path / "o.tar"))
    assert second == first


def test_docker_archive_refuses_an_index(tmp_path: Path) -> None:
    idx = images.write_oci_index(tmp_path / "src", "multi", seed="d-idx")
    with pytest.raises(ClientError, match="choose one platform"):
        copy_image(OCILayoutSource(idx.layout), DockerArchiveDestination(tmp_path / "o.tar"))
    assert leftovers(tmp_path, {"src"}) == []
    # One platform of it is fine.
    copy_image(
        OCILayoutSource(idx.layout, "multi"),
        DockerArchiveDestination(tmp_path / "o.tar", "x/y:arm"),
        reference=idx.child("arm64").manifest_digest,
    )
    assert (
        config_digest(fetch_manifest(DockerArchiveSource(tmp_path / "o.tar")))
        == idx.child("arm64").config_digest
    )


def test_docker_archive_digest_mismatch_leaves_no_file(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="d-bad")
    path = images.layout_blob_path(img.layout, img.layer_digests[0])
    data = path.read_bytes()
    path.write_bytes(data[:100] + bytes([data[100] ^ 1]) + data[101:])
    with pytest.raises(DigestMismatch):
        copy_image(OCILayoutSource(img.layout), DockerArchiveDestination(tmp_path / "o.tar"))
    assert leftovers(tmp_path, {"src"}) == []


def test_docker_archive_refuses_digest_references(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="by tag"):
        DockerArchiveDestination(tmp_path / "o.tar", "app@sha256:" + "a" * 64)


def test_local_names_open_archives(tmp_path: Path) -> None:
    assert isinstance(local_source(f"oci-archive:{tmp_path}/a.tar:t"), OCIArchiveSource)
    assert isinstance(local_source(f"docker-archive:{tmp_path}/a.tar"), DockerArchiveSource)
    dst = local_destination(f"docker-archive:{tmp_path}/a.tar:foo/bar:2")
    assert isinstance(dst, DockerArchiveDestination)
    assert dst.describe() == f"docker-archive:{tmp_path}/a.tar:foo/bar:2"


# ---------------------------------------------------------------------------------------------
# docker-archive and skopeo


def test_skopeo_agrees_on_legacy_docker_archive(ce: ContainersEnv, tmp_path: Path) -> None:
    archive = images.write_docker_archive(
        tmp_path / "d.tar", "dockyard/app:2.0", seed="sk-da", layers=3
    )
    theirs = json.loads(inspect_raw(ce, f"docker-archive:{archive.path}"))
    ours = fetch_manifest(DockerArchiveSource(archive.path)).json()
    assert ours["config"] == theirs["config"]
    assert [(x["digest"], x["size"]) for x in ours["layers"]] == [
        (x["digest"], x["size"]) for x in theirs["layers"]
    ]
    # skopeo 1.9.3 calls every docker-archive layer tar.gzip, even an uncompressed one.
    assert {x["mediaType"] for x in theirs["layers"]} == {DOCKER_LAYER_GZIP}
    assert {x["mediaType"] for x in ours["layers"]} == {DOCKER_LAYER}
    assert inspect_raw(ce, f"docker-archive:{archive.path}", "--config") == archive.config_bytes


def test_skopeo_serves_gzip_layers_unpacked(ce: ContainersEnv, tmp_path: Path) -> None:
    """skopeo 1.9.3 unpacks gzip layer files and names them by diff_id (still calling them
    tar.gzip); we serve the files as they are, so only the config digest is shared."""
    config, layers = gzip_layer_archive(tmp_path / "g.tar", "dockyard/g:1", "sk-gz")
    theirs = json.loads(inspect_raw(ce, f"docker-archive:{tmp_path / 'g.tar'}"))
    ours = fetch_manifest(DockerArchiveSource(tmp_path / "g.tar")).json()
    assert ours["config"] == theirs["config"]
    assert theirs["config"]["digest"] == images.sha256_digest(config)
    assert [(x["digest"], x["size"]) for x in theirs["layers"]] == [
        (x.diff_id, len(x.tar)) for x in layers
    ]
    assert [(x["digest"], x["size"]) for x in ours["layers"]] == [
        (x.digest, x.size) for x in layers
    ]
    # Both unpack to the same filesystem: writing ours as a docker-archive gives skopeo's view.
    copy_image(
        DockerArchiveSource(tmp_path / "g.tar"),
        DockerArchiveDestination(tmp_path / "o.tar", "dockyard/g:1"),
    )
    again = json.loads(inspect_raw(ce, f"docker-archive:{tmp_path / 'o.tar'}"))
    assert [x["digest"] for x in again["layers"]] == [x["digest"] for x in theirs["layers"]]


def test_skopeo_agrees_on_docker25_archive(ce: ContainersEnv, tmp_path: Path) -> None:
    config, layers, oci_manifest = docker25_archive(tmp_path / "d25.tar", "sk-d25")
    theirs = json.loads(inspect_raw(ce, f"docker-archive:{tmp_path / 'd25.tar'}"))
    ours = fetch_manifest(DockerArchiveSource(tmp_path / "d25.tar")).json()
    assert ours["config"] == theirs["config"]
    assert theirs["config"]["digest"] == images.sha256_digest(config)
    assert (
        [x["digest"] for x in ours["layers"]]
        == [x["digest"] for x in theirs["layers"]]
        == [x.diff_id for x in layers]
    )
    assert inspect_raw(ce, f"oci-archive:{tmp_path / 'd25.tar'}:1.0") == oci_manifest


def test_skopeo_written_docker_archive_reads_identically(ce: ContainersEnv, tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="sk-dw", layers=2)
    out = tmp_path / "sk.tar"
    ce.skopeo("copy", f"oci:{img.layout}:v1", f"docker-archive:{out}:foo/bar:2")
    theirs = json.loads(inspect_raw(ce, f"docker-archive:{out}"))
    ours = fetch_manifest(DockerArchiveSource(out, "foo/bar:2"))
    assert config_digest(ours) == theirs["config"]["digest"] == img.config_digest
    assert layer_digests(ours) == [x["digest"] for x in theirs["layers"]] == img.diff_ids
    copy_image(DockerArchiveSource(out), OCILayoutDestination(tmp_path / "o", "x"))
    blobs = images.layout_blobs(tmp_path / "o")
    assert [blobs[d] for d in img.diff_ids] == [x.tar for x in img.layers]


def test_skopeo_reads_our_docker_archive(ce: ContainersEnv, tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="sk-dr", layers=3)
    out = tmp_path / "ours.tar"
    copy_image(OCILayoutSource(img.layout), DockerArchiveDestination(out, "myname/app:1.0"))
    theirs = json.loads(inspect_raw(ce, f"docker-archive:{out}"))
    assert theirs["config"]["digest"] == img.config_digest
    assert [x["digest"] for x in theirs["layers"]] == img.diff_ids
    assert inspect_raw(ce, f"docker-archive:{out}:myname/app:1.0", "--config") == img.config_bytes
    ce.skopeo(
        "copy", f"docker-archive:{out}:docker.io/myname/app:1.0", f"oci:{tmp_path / 'again'}:x"
    )
    again = fetch_manifest(OCILayoutSource(tmp_path / "again", "x"))
    assert config_digest(again) == img.config_digest
    # skopeo converts to OCI and compresses the layers itself; their content is ours.
    for layer, original in zip(again.json()["layers"], img.layers, strict=True):
        blob = images.read_layout_blob(tmp_path / "again", layer["digest"])
        assert gzip.decompress(blob) == original.tar


def test_layout_keeps_a_docker_manifest_as_is(tmp_path: Path) -> None:
    """A layout stores the manifest it is given (skopeo would convert to OCI first; skopeo
    1.9.3 also skips index.json entries of Docker media types when reading a layout)."""
    archive = images.write_docker_archive(tmp_path / "d.tar", "dockyard/app:2.0", seed="dl")
    top: Manifest = copy_image(
        DockerArchiveSource(archive.path), OCILayoutDestination(tmp_path / "l", "v")
    )
    assert images.read_layout_ref(tmp_path / "l", "v")["mediaType"] == mt.DOCKER_MANIFEST
    assert fetch_manifest(OCILayoutSource(tmp_path / "l", "v")) == top
    copy_image(OCILayoutSource(tmp_path / "l", "v"), DockerArchiveDestination(tmp_path / "a.tar"))
    assert fetch_manifest(DockerArchiveSource(tmp_path / "a.tar")) == top


def test_gzip_layers_are_unpacked_whatever_the_chunking(tmp_path: Path) -> None:
    """Multi-member gzip (pigz, concatenated streams) and trailing zero padding, fed in chunks
    of every awkward size, unpack to the same tar."""
    img = images.write_oci_image(tmp_path / "src", "v1", seed="chunks", layers=1)
    tar = img.layers[0].tar
    blob = gzip.compress(tar[:5000], mtime=0) + gzip.compress(tar[5000:], mtime=0) + b"\0" * 7
    for chunk in (1, 3, 4, 777, len(blob)):
        with open(tmp_path / "out", "wb") as handle:
            intake = _Intake(handle)
            for start in range(0, len(blob), chunk):
                intake.write(blob[start : start + chunk])
            intake.finish()
        assert (tmp_path / "out").read_bytes() == tar, chunk
        assert intake.digest == img.diff_ids[0]
    with open(tmp_path / "out", "wb") as handle:
        intake = _Intake(handle)
        intake.write(blob[:-60])
        with pytest.raises(ClientError, match="cannot be unpacked"):
            intake.finish()
