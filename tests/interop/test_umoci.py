"""umoci as an independent OCI producer and a strict consumer, with skopeo as the transport.

umoci writes layouts with its own tar and gzip conventions (including whiteout layers for
deleted files) and verifies every blob digest when it unpacks. Round-tripping its layouts through
Dockyard checks that nothing of another tool's bytes changes on the way; unpacking what comes
back checks the result is a usable image, not just matching digests.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import images
from tests.support.peers import ContainersEnv, containers_env, require, run, unique_repo
from tests.support.server import RunningRegistry


@pytest.fixture
def ce(tmp_path: Path) -> Iterator[ContainersEnv]:
    require("skopeo")
    require("umoci")
    with containers_env(tmp_path / "containers") as env:
        yield env


def umoci(*args: str) -> str:
    return run([require("umoci"), *args]).stdout


def rootfs_files(bundle: Path) -> dict[str, bytes | str]:
    """Files under bundle/rootfs: bytes for regular files, 'link->target' for symlinks."""
    root = bundle / "rootfs"
    out: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = f"link->{os.readlink(path)}"
        elif path.is_file():
            out[rel] = path.read_bytes()
    return out


def round_trip(
    ce: ContainersEnv, registry: RunningRegistry, layout: Path, tag: str, out: Path
) -> str:
    repo = unique_repo("umoci")
    ref = f"docker://{registry.host}/{repo}:{tag}"
    ce.skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:{tag}", ref)
    ce.skopeo("copy", "--src-tls-verify=false", ref, f"oci:{out}:{tag}")
    return ref


def test_umoci_layout_round_trip_and_unpack(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    layout = tmp_path / "layout"
    umoci("init", "--layout", str(layout))
    umoci("new", "--image", f"{layout}:base")

    # v1: files, a nested folder, an executable and a symlink.
    bundle = tmp_path / "bundle"
    umoci("unpack", "--image", f"{layout}:base", str(bundle))
    rootfs = bundle / "rootfs"
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "motd").write_text("made by umoci\n")
    (rootfs / "usr" / "bin").mkdir(parents=True)
    (rootfs / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\necho tool\n")
    (rootfs / "usr" / "bin" / "tool").chmod(0o755)
    (rootfs / "obsolete.txt").write_text("deleted in v2\n")
    (rootfs / "motd").symlink_to("etc/motd")
    umoci("repack", "--image", f"{layout}:v1", str(bundle))
    umoci(
        "config",
        "--image",
        f"{layout}:v1",
        "--config.label",
        "org.dockyard.test=umoci",
        "--config.env",
        "TOOL=/usr/bin/tool",
        "--config.cmd",
        "/usr/bin/tool",
    )

    # v2: a second layer that deletes a file (a whiteout) and changes another.
    umoci("unpack", "--image", f"{layout}:v1", str(tmp_path / "bundle2"))
    rootfs2 = tmp_path / "bundle2" / "rootfs"
    (rootfs2 / "obsolete.txt").unlink()
    (rootfs2 / "etc" / "motd").write_text("changed in v2\n")
    umoci("repack", "--image", f"{layout}:v2", str(tmp_path / "bundle2"))
    expected = rootfs_files(tmp_path / "bundle2")
    source = images.read_layout_ref(layout, "v2")

    ref = round_trip(ce, registry, layout, "v2", tmp_path / "out")

    assert ce.inspect_raw(ref) == images.read_layout_blob(layout, source["digest"])
    back = images.read_layout_ref(tmp_path / "out", "v2")
    assert back["digest"] == source["digest"]
    manifest = json.loads(images.read_layout_blob(tmp_path / "out", back["digest"]))
    assert len(manifest["layers"]) == 2
    for descriptor in [manifest["config"], *manifest["layers"]]:
        assert images.read_layout_blob(
            tmp_path / "out", descriptor["digest"]
        ) == images.read_layout_blob(layout, descriptor["digest"])
    config = json.loads(images.read_layout_blob(tmp_path / "out", manifest["config"]["digest"]))
    assert config["config"]["Labels"]["org.dockyard.test"] == "umoci"

    # umoci checks every digest while unpacking; the whiteout must remove obsolete.txt.
    umoci("unpack", "--image", f"{tmp_path / 'out'}:v2", str(tmp_path / "unpacked"))
    unpacked = rootfs_files(tmp_path / "unpacked")
    assert unpacked == expected
    assert "obsolete.txt" not in unpacked
    assert unpacked["etc/motd"] == b"changed in v2\n"
    assert os.access(tmp_path / "unpacked" / "rootfs" / "usr" / "bin" / "tool", os.X_OK)


def test_umoci_unpacks_builder_image_after_round_trip(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    """Our pure-Python builder's image, through the registry, unpacked by a strict consumer."""
    img = images.write_oci_image(tmp_path / "src", "v1", seed="umoci-builder", layers=3)
    round_trip(ce, registry, tmp_path / "src", "v1", tmp_path / "out")
    umoci("unpack", "--image", f"{tmp_path / 'out'}:v1", str(tmp_path / "bundle"))
    assert rootfs_files(tmp_path / "bundle") == img.files
