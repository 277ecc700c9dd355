"""OCI image layouts (`oci:PATH[:TAG]`): reading, writing, crash safety, and skopeo interop."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dockyard.client.errors import ClientError, DigestMismatch, NotFound
from dockyard.client.image import Manifest
from dockyard.client.layout import REF_NAME, OCILayoutDestination, OCILayoutSource
from dockyard.client.local import local_destination, local_source, split_local
from dockyard.core import mediatypes as mt
from dockyard.core.manifest import Descriptor
from tests.client.helpers import (
    bytes_opener,
    copy_image,
    copy_image_async,
    fetch_blob,
    fetch_manifest,
    layer_digests,
    run,
)
from tests.support import images
from tests.support.peers import ContainersEnv, require
from tests.support.peers import run as run_peer


def blob_names(layout: Path) -> set[str]:
    return {p.name for p in (layout / "blobs" / "sha256").iterdir()}


def stray_files(layout: Path) -> list[Path]:
    """Anything in a layout that is neither a layout file nor a blob (temp files)."""
    allowed = {layout / "oci-layout", layout / "index.json", layout / "blobs"}
    return [
        p
        for p in layout.rglob("*")
        if p not in allowed
        and p.parent != layout / "blobs" / "sha256"
        and p != layout / "blobs" / "sha256"
    ]


# ---------------------------------------------------------------------------------------------
# reading


def test_source_reads_tagged_image(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "l", "v1", seed="read", layers=3)
    manifest = fetch_manifest(OCILayoutSource(tmp_path / "l", "v1"))
    assert manifest == Manifest(img.manifest_bytes, mt.OCI_MANIFEST, img.manifest_digest)
    assert layer_digests(manifest) == img.layer_digests
    layer = img.layers[1]
    assert (
        fetch_blob(OCILayoutSource(tmp_path / "l", "v1"), layer.digest, layer.size)
        == layer.compressed
    )


def test_source_without_tag_takes_the_only_image(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "l", "v1", seed="only")
    assert fetch_manifest(OCILayoutSource(tmp_path / "l")).digest == img.manifest_digest


def test_source_without_tag_lists_tags_when_several(tmp_path: Path) -> None:
    images.write_oci_image(tmp_path / "l", "v1", seed="a")
    images.write_oci_image(tmp_path / "l", "v2", seed="b")
    with pytest.raises(ClientError, match="v1, v2"):
        fetch_manifest(OCILayoutSource(tmp_path / "l"))


def test_unknown_tag_is_not_found_and_names_the_tags(tmp_path: Path) -> None:
    images.write_oci_image(tmp_path / "l", "v1", seed="a")
    with pytest.raises(NotFound, match="v1"):
        fetch_manifest(OCILayoutSource(tmp_path / "l", "nope"))


def test_missing_layout_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        fetch_manifest(OCILayoutSource(tmp_path / "absent", "v1"))
    (tmp_path / "plain").mkdir()
    with pytest.raises(NotFound, match="not an OCI image layout"):
        fetch_manifest(OCILayoutSource(tmp_path / "plain"))


def test_child_manifest_by_digest_and_blob_from_offset(tmp_path: Path) -> None:
    idx = images.write_oci_index(tmp_path / "l", "multi", seed="kids")
    top = fetch_manifest(OCILayoutSource(tmp_path / "l", "multi"))
    assert top.is_index and top.digest == idx.index_digest
    arm = idx.child("arm64")
    child = fetch_manifest(OCILayoutSource(tmp_path / "l", "multi"), arm.manifest_digest)
    assert child.body == arm.manifest_bytes and child.media_type == mt.OCI_MANIFEST

    async def tail() -> bytes:
        src = OCILayoutSource(tmp_path / "l", "multi")
        desc = Descriptor(mt.OCI_CONFIG, arm.config_digest, len(arm.config_bytes))
        try:
            return b"".join([c async for c in src.open_blob(desc, 10)])
        finally:
            await src.close()

    assert run(tail()) == arm.config_bytes[10:]


def test_corrupt_manifest_blob_is_a_digest_mismatch(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "l", "v1", seed="corrupt")
    images.layout_blob_path(tmp_path / "l", img.manifest_digest).write_bytes(b"{}")
    with pytest.raises(DigestMismatch):
        fetch_manifest(OCILayoutSource(tmp_path / "l", "v1"))


# ---------------------------------------------------------------------------------------------
# writing


def test_round_trip_is_byte_identical(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="rt", layers=3)
    copy_image(
        OCILayoutSource(tmp_path / "src", "v1"), OCILayoutDestination(tmp_path / "dst", "copy")
    )
    entry = images.read_layout_ref(tmp_path / "dst", "copy")
    assert entry["digest"] == img.manifest_digest
    assert entry["mediaType"] == mt.OCI_MANIFEST
    assert entry["size"] == len(img.manifest_bytes)
    assert images.layout_blobs(tmp_path / "dst") == images.layout_blobs(tmp_path / "src")
    assert images.read_layout_index(tmp_path / "dst")["mediaType"] == mt.OCI_INDEX
    assert (tmp_path / "dst" / "oci-layout").read_bytes() == b'{"imageLayoutVersion": "1.0.0"}'
    assert stray_files(tmp_path / "dst") == []


def test_index_children_are_blobs_and_only_the_top_is_tagged(tmp_path: Path) -> None:
    idx = images.write_oci_index(tmp_path / "src", "multi", seed="idx")
    copy_image(
        OCILayoutSource(tmp_path / "src", "multi"), OCILayoutDestination(tmp_path / "dst", "m")
    )
    entries = images.read_layout_index(tmp_path / "dst")["manifests"]
    assert entries == [
        {
            "mediaType": mt.OCI_INDEX,
            "digest": idx.index_digest,
            "size": len(idx.index_bytes),
            "annotations": {REF_NAME: "m"},
        }
    ]
    assert blob_names(tmp_path / "dst") == blob_names(tmp_path / "src")


def test_writing_a_tag_replaces_its_entry_and_keeps_the_others(tmp_path: Path) -> None:
    a = images.write_oci_image(tmp_path / "a", "x", seed="a")
    b = images.write_oci_image(tmp_path / "b", "x", seed="b")
    dst = tmp_path / "dst"
    copy_image(OCILayoutSource(a.layout), OCILayoutDestination(dst, "one"))
    copy_image(OCILayoutSource(a.layout), OCILayoutDestination(dst, "two"))
    copy_image(OCILayoutSource(b.layout), OCILayoutDestination(dst, "one"))
    tags = {images.read_layout_ref(dst, t)["digest"]: t for t in ("one", "two")}
    assert tags == {b.manifest_digest: "one", a.manifest_digest: "two"}
    assert len(images.read_layout_index(dst)["manifests"]) == 2


def test_untagged_write_adds_one_entry_once(tmp_path: Path) -> None:
    a = images.write_oci_image(tmp_path / "a", "x", seed="a")
    dst = tmp_path / "dst"
    copy_image(OCILayoutSource(a.layout), OCILayoutDestination(dst))
    copy_image(OCILayoutSource(a.layout), OCILayoutDestination(dst))
    assert images.read_layout_index(dst)["manifests"] == [
        {"mediaType": mt.OCI_MANIFEST, "digest": a.manifest_digest, "size": len(a.manifest_bytes)}
    ]
    # Tagging the same digest later absorbs the untagged entry (as skopeo does).
    copy_image(OCILayoutSource(a.layout), OCILayoutDestination(dst, "t"))
    assert [e.get("annotations") for e in images.read_layout_index(dst)["manifests"]] == [
        {REF_NAME: "t"}
    ]


def test_tagging_inside_a_layout_moves_no_bytes(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "l", "v1", seed="retag")
    src = OCILayoutSource(tmp_path / "l", "v1")
    opened: list[str] = []
    original = src.open_blob

    def spy(descriptor: Descriptor, offset: int = 0) -> AsyncIterator[bytes]:
        opened.append(descriptor.digest)
        return original(descriptor, offset)

    src.open_blob = spy  # type: ignore[method-assign]
    copy_image(src, OCILayoutDestination(tmp_path / "l", "v2"))
    assert opened == []
    assert images.read_layout_ref(tmp_path / "l", "v2")["digest"] == img.manifest_digest
    assert images.read_layout_ref(tmp_path / "l", "v1")["digest"] == img.manifest_digest


def test_concurrent_commits_keep_both_entries(tmp_path: Path) -> None:
    a = images.write_oci_image(tmp_path / "a", "x", seed="conc-a")
    b = images.write_oci_image(tmp_path / "b", "x", seed="conc-b")
    dst = tmp_path / "dst"
    images.write_oci_image(dst, "base", seed="conc-base")

    async def both() -> None:
        await asyncio.gather(
            *[
                copy_image_async(OCILayoutSource(img.layout), OCILayoutDestination(dst, tag))
                for n in range(5)
                for img, tag in ((a, f"a{n}"), (b, f"b{n}"))
            ]
        )

    run(both())
    tags = {e["annotations"][REF_NAME] for e in images.read_layout_index(dst)["manifests"]}
    assert tags == {"base", *(f"a{n}" for n in range(5)), *(f"b{n}" for n in range(5))}


def test_invalid_tag_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="invalid OCI layout tag"):
        OCILayoutDestination(tmp_path / "dst", "bad tag")


def test_has_blob_checks_size(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "l", "v1", seed="has")
    dst = OCILayoutDestination(tmp_path / "l", "v2")
    layer = img.layers[0]
    assert run(dst.has_blob(Descriptor(mt.OCI_MANIFEST, layer.digest, layer.size)))
    assert not run(dst.has_blob(Descriptor(mt.OCI_MANIFEST, layer.digest, layer.size + 1)))
    assert not run(dst.has_blob(Descriptor(mt.OCI_MANIFEST, "sha256:" + "0" * 64, 1)))


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_digest_mismatch_leaves_no_file(tmp_path: Path) -> None:
    layout = tmp_path / "l"
    images.write_oci_image(layout, "v1", seed="mismatch")
    before = images.layout_blobs(layout)
    index_before = (layout / "index.json").read_bytes()
    data = b"the real bytes" * 1000
    wrong = b"the fake bytes" * 1000

    async def attempt(desc: Descriptor, body: bytes) -> None:
        dst = OCILayoutDestination(layout, "v1")
        try:
            await dst.put_blob(desc, bytes_opener(body))
        finally:
            await dst.close()

    with pytest.raises(DigestMismatch):
        run(attempt(Descriptor("x", _sha(data), len(data)), wrong))
    with pytest.raises(DigestMismatch, match="more than"):
        run(attempt(Descriptor("x", _sha(data), len(data) - 1), data))
    with pytest.raises(DigestMismatch, match="bytes"):
        run(attempt(Descriptor("x", _sha(data), len(data) + 5), data))
    assert images.layout_blobs(layout) == before
    assert (layout / "index.json").read_bytes() == index_before
    assert stray_files(layout) == []


def test_failed_copy_leaves_the_old_index_untouched(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    old = images.write_oci_image(dst, "v1", seed="old")
    index_before = (dst / "index.json").read_bytes()
    new = images.write_oci_image(tmp_path / "src", "v1", seed="new", layers=3)
    # Corrupt the last layer of the source: its blob fails verification mid-copy.
    path = images.layout_blob_path(new.layout, new.layer_digests[-1])
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(DigestMismatch):
        copy_image(OCILayoutSource(new.layout, "v1"), OCILayoutDestination(dst, "v1"))
    assert (dst / "index.json").read_bytes() == index_before
    assert images.read_layout_ref(dst, "v1")["digest"] == old.manifest_digest
    assert stray_files(dst) == []
    assert new.layer_digests[-1].split(":")[1] not in blob_names(dst)


def test_commit_refuses_an_incomplete_image(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="incomplete")
    dst = tmp_path / "dst"
    images.write_oci_image(dst, "keep", seed="keep")
    index_before = (dst / "index.json").read_bytes()

    async def manifest_only() -> None:
        out = OCILayoutDestination(dst, "v1")
        try:
            await out.put_manifest(
                Manifest(img.manifest_bytes, mt.OCI_MANIFEST, img.manifest_digest), "v1"
            )
            await out.commit()
        finally:
            await out.close()

    with pytest.raises(ClientError, match="incomplete"):
        run(manifest_only())
    assert (dst / "index.json").read_bytes() == index_before


def test_failed_copy_into_a_new_layout_leaves_nothing(tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="new-layout")
    path = images.layout_blob_path(img.layout, img.config_digest)
    path.write_bytes(b"x" + path.read_bytes()[1:])
    with pytest.raises(DigestMismatch):
        copy_image(OCILayoutSource(img.layout), OCILayoutDestination(tmp_path / "a" / "b" / "c"))
    assert not (tmp_path / "a").exists()


def test_manifest_with_wrong_digest_is_refused(tmp_path: Path) -> None:
    async def put() -> None:
        dst = OCILayoutDestination(tmp_path / "dst", "v1")
        try:
            await dst.put_manifest(Manifest(b"{}", mt.OCI_MANIFEST, "sha256:" + "a" * 64), "v1")
        finally:
            await dst.close()

    with pytest.raises(DigestMismatch):
        run(put())
    assert not (tmp_path / "dst").exists()


def test_put_blob_resumes_a_dropped_stream_at_its_offset(tmp_path: Path) -> None:
    data = bytes(range(256)) * 400
    desc = Descriptor("application/octet-stream", _sha(data), len(data))
    offsets: list[int] = []
    progress: list[int] = []

    def opener(offset: int) -> AsyncIterator[bytes]:
        offsets.append(offset)

        async def stream() -> AsyncIterator[bytes]:
            for start in range(offset, len(data), 4096):
                if len(offsets) == 1 and start >= 40000:
                    raise ConnectionResetError("dropped")
                yield data[start : start + 4096]
                await asyncio.sleep(0)

        return stream()

    images.write_oci_image(tmp_path / "dst", "v0", seed="existing")  # not removed at close

    async def put() -> None:
        dst = OCILayoutDestination(tmp_path / "dst", "v1")
        try:
            await dst.put_blob(desc, opener, progress.append)
        finally:
            await dst.close()

    run(put())
    assert offsets == [0, 40960]
    assert sum(progress) == len(data)
    assert images.read_layout_blob(tmp_path / "dst", desc.digest) == data


def test_put_blob_gives_up_after_repeated_failures(tmp_path: Path) -> None:
    data = b"z" * 10000
    desc = Descriptor("application/octet-stream", _sha(data), len(data))
    calls: list[int] = []

    def opener(offset: int) -> AsyncIterator[bytes]:
        calls.append(offset)

        async def stream() -> AsyncIterator[bytes]:
            raise ConnectionResetError("always")
            yield b""

        return stream()

    async def put() -> None:
        dst = OCILayoutDestination(tmp_path / "dst", "v1")
        try:
            await dst.put_blob(desc, opener)
        finally:
            await dst.close()

    with pytest.raises(ConnectionResetError):
        run(put())
    assert len(calls) == 4
    assert not (tmp_path / "dst").exists()


def test_local_names_are_split_as_skopeo_does(tmp_path: Path) -> None:
    assert split_local("oci:/a/b:v1") == ("oci", Path("/a/b"), "v1")
    assert split_local("oci:dir") == ("oci", Path("dir"), None)
    assert split_local("oci:dir:docker.io/library/alpine:3") == (
        "oci",
        Path("dir"),
        "docker.io/library/alpine:3",
    )
    assert split_local("docker-archive:x.tar:foo/bar:2") == (
        "docker-archive",
        Path("x.tar"),
        "foo/bar:2",
    )
    assert split_local("alpine:3") is None
    assert split_local("docker://alpine") is None
    with pytest.raises(ClientError):
        split_local("oci::tag")
    assert isinstance(local_source(f"oci:{tmp_path}:v1"), OCILayoutSource)
    assert isinstance(local_destination(f"oci:{tmp_path}:v1"), OCILayoutDestination)


# ---------------------------------------------------------------------------------------------
# skopeo interop


def inspect_raw(ce: ContainersEnv, ref: str) -> bytes:
    return ce.skopeo("inspect", "--raw", ref, text=False).stdout


def test_skopeo_written_layout_reads_identically(ce: ContainersEnv, tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="sk-w", layers=3)
    ce.skopeo("copy", f"oci:{img.layout}:v1", f"oci:{tmp_path / 'sk'}:t")
    manifest = fetch_manifest(OCILayoutSource(tmp_path / "sk", "t"))
    assert manifest.digest == img.manifest_digest
    assert manifest.body == img.manifest_bytes
    copy_image(OCILayoutSource(tmp_path / "sk", "t"), OCILayoutDestination(tmp_path / "ours"))
    assert images.layout_blobs(tmp_path / "ours") == images.layout_blobs(img.layout)


def test_skopeo_written_index_reads_identically(ce: ContainersEnv, tmp_path: Path) -> None:
    idx = images.write_oci_index(tmp_path / "src", "multi", seed="sk-idx")
    ce.skopeo("copy", "--all", f"oci:{idx.layout}:multi", f"oci:{tmp_path / 'sk'}:m")
    top = fetch_manifest(OCILayoutSource(tmp_path / "sk", "m"))
    assert top.digest == idx.index_digest
    for child in idx.children:
        got = fetch_manifest(OCILayoutSource(tmp_path / "sk", "m"), child.manifest_digest)
        assert got.body == child.manifest_bytes


def test_skopeo_reads_our_layout_identically(ce: ContainersEnv, tmp_path: Path) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="sk-r", layers=2)
    ours = tmp_path / "ours"
    copy_image(OCILayoutSource(img.layout, "v1"), OCILayoutDestination(ours, "mine"))
    assert inspect_raw(ce, f"oci:{ours}:mine") == img.manifest_bytes
    assert inspect_raw(ce, f"oci:{ours}") == img.manifest_bytes  # the only entry
    ce.skopeo("copy", f"oci:{ours}:mine", f"oci:{tmp_path / 'again'}:x")
    assert images.read_layout_ref(tmp_path / "again", "x")["digest"] == img.manifest_digest
    assert images.layout_blobs(tmp_path / "again") == images.layout_blobs(img.layout)


def test_skopeo_reads_our_index_identically(ce: ContainersEnv, tmp_path: Path) -> None:
    idx = images.write_oci_index(tmp_path / "src", "multi", seed="sk-ri")
    ours = tmp_path / "ours"
    copy_image(OCILayoutSource(idx.layout, "multi"), OCILayoutDestination(ours, "m"))
    assert inspect_raw(ce, f"oci:{ours}:m") == idx.index_bytes
    ce.skopeo("copy", "--all", f"oci:{ours}:m", f"oci:{tmp_path / 'again'}:m")
    assert images.read_layout_ref(tmp_path / "again", "m")["digest"] == idx.index_digest
    assert blob_names(tmp_path / "again") == blob_names(idx.layout)
    # One platform, the way skopeo picks it without --all.
    ce.skopeo("copy", "--override-arch", "arm64", f"oci:{ours}:m", f"oci:{tmp_path / 'one'}:a")
    assert (
        images.read_layout_ref(tmp_path / "one", "a")["digest"]
        == idx.child("arm64").manifest_digest
    )


def test_umoci_reads_our_layout_and_we_read_umocis(tmp_path: Path) -> None:
    umoci = require("umoci")
    img = images.write_oci_image(tmp_path / "src", "v1", seed="umoci", layers=2)
    ours = tmp_path / "ours"
    copy_image(OCILayoutSource(img.layout), OCILayoutDestination(ours, "mine"))
    copy_image(OCILayoutSource(img.layout), OCILayoutDestination(ours, "also"))
    assert sorted(run_peer([umoci, "ls", "--layout", str(ours)]).stdout.split()) == ["also", "mine"]
    stat = run_peer([umoci, "stat", "--json", "--image", f"{ours}:mine"]).stdout
    assert len(json.loads(stat)["history"]) == 2
    theirs = tmp_path / "theirs"
    run_peer([umoci, "init", "--layout", str(theirs)])
    run_peer([umoci, "new", "--image", f"{theirs}:t"])
    manifest = fetch_manifest(OCILayoutSource(theirs, "t"))
    assert manifest.digest == images.read_layout_ref(theirs, "t")["digest"]
    copy_image(OCILayoutSource(theirs, "t"), OCILayoutDestination(ours, "empty"))
    run_peer([umoci, "stat", "--image", f"{ours}:empty"])
