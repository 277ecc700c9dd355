"""skopeo against Dockyard: OCI layouts and docker archives in, byte-identical layouts out."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import images
from tests.support.images import MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST
from tests.support.peers import (
    ContainersEnv,
    Distribution,
    containers_env,
    require,
    unique_repo,
)
from tests.support.server import RunningRegistry

MANIFEST_ACCEPT = ", ".join(
    [MT_OCI_MANIFEST, MT_OCI_INDEX, MT_DOCKER_MANIFEST, images.MT_DOCKER_LIST]
)


@pytest.fixture
def ce(tmp_path: Path) -> Iterator[ContainersEnv]:
    require("skopeo")
    with containers_env(tmp_path / "containers") as env:
        yield env


def copy(ce: ContainersEnv, src: str, dst: str, *extra: str) -> None:
    ce.skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", *extra, src, dst)


def assert_layout_has_blobs(layout: Path, expected: dict[str, bytes]) -> None:
    for digest, data in expected.items():
        assert images.read_layout_blob(layout, digest) == data, digest


def source_blobs(layout: Path, digests: list[str]) -> dict[str, bytes]:
    return {d: images.read_layout_blob(layout, d) for d in digests}


def test_oci_layout_round_trip_is_byte_identical(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="skopeo-roundtrip", layers=3)
    repo = unique_repo("skopeo-rt")
    ref = f"docker://{registry.host}/{repo}:v1"

    copy(ce, f"oci:{tmp_path / 'src'}:v1", ref)

    assert ce.inspect_raw(ref) == img.manifest_bytes
    head = httpx.head(f"{registry.url}/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
    assert head.status_code == 200
    assert head.headers["docker-content-digest"] == img.manifest_digest

    # Back by tag and by digest: same manifest digest, same blob bytes.
    copy(ce, ref, f"oci:{tmp_path / 'out'}:v1")
    copy(
        ce,
        f"docker://{registry.host}/{repo}@{img.manifest_digest}",
        f"oci:{tmp_path / 'out'}:bydigest",
    )
    for name in ("v1", "bydigest"):
        descriptor = images.read_layout_ref(tmp_path / "out", name)
        assert descriptor["digest"] == img.manifest_digest
        assert descriptor["mediaType"] == MT_OCI_MANIFEST
    expected = source_blobs(tmp_path / "src", [img.manifest_digest, *img.blob_digests])
    assert_layout_has_blobs(tmp_path / "out", expected)


def test_large_layers_round_trip(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    """Multi-MiB random (incompressible) layers: streamed uploads and downloads."""
    img = images.write_oci_image(
        tmp_path / "src",
        "big",
        seed="skopeo-big",
        layers=2,
        files_per_layer=2,
        file_size=3 * 1024 * 1024,
    )
    assert max(layer.size for layer in img.layers) > 3 * 1024 * 1024
    repo = unique_repo("skopeo-big")
    ref = f"docker://{registry.host}/{repo}:big"
    copy(ce, f"oci:{tmp_path / 'src'}:big", ref)
    copy(ce, ref, f"oci:{tmp_path / 'out'}:big")
    assert images.read_layout_ref(tmp_path / "out", "big")["digest"] == img.manifest_digest
    assert_layout_has_blobs(tmp_path / "out", source_blobs(tmp_path / "src", img.blob_digests))


def test_index_copy_all_round_trip(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    idx = images.write_oci_index(tmp_path / "src", "multi", seed="skopeo-index")
    repo = unique_repo("skopeo-index")
    ref = f"docker://{registry.host}/{repo}:multi"

    copy(ce, f"oci:{tmp_path / 'src'}:multi", ref, "--all")

    assert ce.inspect_raw(ref) == idx.index_bytes
    for child in idx.children:
        child_ref = f"docker://{registry.host}/{repo}@{child.manifest_digest}"
        assert ce.inspect_raw(child_ref) == child.manifest_bytes
        assert ce.inspect_raw(child_ref, "--config") == child.config_bytes

    copy(ce, ref, f"oci:{tmp_path / 'out'}:multi", "--all")
    descriptor = images.read_layout_ref(tmp_path / "out", "multi")
    assert descriptor["digest"] == idx.index_digest
    assert descriptor["mediaType"] == MT_OCI_INDEX
    digests = [idx.index_digest, *idx.manifest_digests, *idx.blob_digests]
    assert_layout_has_blobs(tmp_path / "out", source_blobs(tmp_path / "src", digests))


def test_index_copy_one_platform(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    """Without --all skopeo resolves the index to one child: arm64, as asked."""
    idx = images.write_oci_index(tmp_path / "src", "multi", seed="skopeo-one-platform")
    repo = unique_repo("skopeo-platform")
    ref = f"docker://{registry.host}/{repo}:multi"
    copy(ce, f"oci:{tmp_path / 'src'}:multi", ref, "--all")

    ce.skopeo(
        "--override-arch",
        "arm64",
        "--override-os",
        "linux",
        "copy",
        "--src-tls-verify=false",
        ref,
        f"oci:{tmp_path / 'out'}:arm",
    )
    arm = idx.child("arm64")
    assert images.read_layout_ref(tmp_path / "out", "arm")["digest"] == arm.manifest_digest
    assert_layout_has_blobs(tmp_path / "out", source_blobs(tmp_path / "src", arm.blob_digests))


def test_inspect(registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path) -> None:
    img = images.write_oci_image(
        tmp_path / "src",
        "v1",
        seed="skopeo-inspect",
        layers=2,
        labels={"org.opencontainers.image.title": "inspect-me"},
    )
    repo = unique_repo("skopeo-inspect")
    ref = f"docker://{registry.host}/{repo}:v1"
    copy(ce, f"oci:{tmp_path / 'src'}:v1", ref)

    info = json.loads(ce.skopeo("inspect", "--tls-verify=false", ref).stdout)
    assert info["Digest"] == img.manifest_digest
    assert info["Name"] == f"{registry.host}/{repo}"
    assert info["RepoTags"] == ["v1"]
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert info["Layers"] == img.layer_digests
    assert info["Labels"]["org.opencontainers.image.title"] == "inspect-me"
    assert ce.inspect_raw(ref, "--config") == img.config_bytes


def test_list_tags(registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path) -> None:
    images.write_oci_image(tmp_path / "src", "v1", seed="skopeo-tags")
    repo = unique_repo("skopeo-tags")
    tags = ["v1", "latest", "1.0.0", "release-2024", "a_b.c"]
    for tag in tags:
        copy(ce, f"oci:{tmp_path / 'src'}:v1", f"docker://{registry.host}/{repo}:{tag}")

    listed = json.loads(
        ce.skopeo("list-tags", "--tls-verify=false", f"docker://{registry.host}/{repo}").stdout
    )
    assert listed["Repository"] == f"{registry.host}/{repo}"
    assert sorted(listed["Tags"]) == sorted(tags)


def test_delete_then_inspect_fails(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="skopeo-delete")
    repo = unique_repo("skopeo-delete")
    ref = f"docker://{registry.host}/{repo}:v1"
    copy(ce, f"oci:{tmp_path / 'src'}:v1", ref)
    assert ce.inspect_raw(ref) == img.manifest_bytes

    ce.skopeo("delete", "--tls-verify=false", ref)

    result = ce.skopeo("inspect", "--raw", "--tls-verify=false", ref, check=False)
    assert result.returncode != 0, result.stdout
    assert "manifest unknown" in result.stderr.lower(), result.stderr
    for reference in ("v1", img.manifest_digest):
        response = httpx.get(
            f"{registry.url}/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
        )
        assert response.status_code == 404, (reference, response.text)
        codes = {error.get("code") for error in response.json().get("errors", [])}
        assert "MANIFEST_UNKNOWN" in codes, response.text


def test_docker_archive_to_registry(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    archive = images.write_docker_archive(
        tmp_path / "image.tar", "dockyard/archived:1.0", seed="skopeo-archive", layers=3
    )
    repo = unique_repo("skopeo-archive")
    ref = f"docker://{registry.host}/{repo}:1.0"

    copy(ce, f"docker-archive:{archive.path}", ref)

    manifest = ce.inspect_json(ref)
    assert manifest["mediaType"] == MT_DOCKER_MANIFEST
    assert manifest["config"]["digest"] == archive.image_id
    assert len(manifest["layers"]) == 3
    assert ce.inspect_raw(ref, "--config") == archive.config_bytes

    # skopeo compressed the layers itself; their uncompressed content must be the archive's.
    copy(ce, ref, f"oci:{tmp_path / 'out'}:1.0")
    out_manifest = json.loads(
        images.read_layout_blob(
            tmp_path / "out", images.read_layout_ref(tmp_path / "out", "1.0")["digest"]
        )
    )
    files: dict[str, bytes] = {}
    for layer, diff_id in zip(out_manifest["layers"], archive.diff_ids, strict=True):
        blob = images.read_layout_blob(tmp_path / "out", layer["digest"])
        tar = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        assert images.sha256_digest(tar) == diff_id
        files.update(images.untar_files(tar))
    assert files == archive.files


def test_copy_between_repositories(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    """Registry to registry on the same host: skopeo tries cross-repository blob mounts."""
    img = images.write_oci_image(tmp_path / "src", "v1", seed="skopeo-mount", layers=2)
    first, second = unique_repo("skopeo-mount-a"), unique_repo("skopeo-mount-b")
    copy(ce, f"oci:{tmp_path / 'src'}:v1", f"docker://{registry.host}/{first}:v1")

    copy(ce, f"docker://{registry.host}/{first}:v1", f"docker://{registry.host}/{second}:v2")

    assert ce.inspect_raw(f"docker://{registry.host}/{second}:v2") == img.manifest_bytes
    for digest in img.blob_digests:
        response = httpx.get(f"{registry.url}/v2/{second}/blobs/{digest}", follow_redirects=True)
        assert response.status_code == 200, digest
        assert images.sha256_digest(response.content) == digest


def test_sync_repository_to_directory(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    """`skopeo sync` lists the tags of a repository and copies every one of them."""
    first = images.write_oci_image(tmp_path / "src", "one", seed="skopeo-sync-1")
    second = images.write_oci_image(tmp_path / "src", "two", seed="skopeo-sync-2")
    repo = unique_repo("skopeo-sync")
    for tag in ("one", "two"):
        copy(ce, f"oci:{tmp_path / 'src'}:{tag}", f"docker://{registry.host}/{repo}:{tag}")

    ce.skopeo(
        "sync",
        "--src",
        "docker",
        "--dest",
        "dir",
        "--src-tls-verify=false",
        f"{registry.host}/{repo}",
        str(tmp_path / "synced"),
    )

    # One dir: image per tag, named <repo>:<tag> under the destination.
    manifests = {
        p.parent.name.rsplit(":", 1)[-1]: p.read_bytes()
        for p in (tmp_path / "synced").rglob("manifest.json")
    }
    assert manifests == {"one": first.manifest_bytes, "two": second.manifest_bytes}


def test_sync_from_distribution(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    """Registry to registry: every tag of a CNCF Distribution repository, index included."""
    img = images.write_oci_image(tmp_path / "src", "single", seed="distribution-single")
    idx = images.write_oci_index(tmp_path / "src", "multi", seed="distribution-multi")
    with Distribution(tmp_path / "distribution") as upstream:
        for tag in ("single", "multi"):
            copy(
                ce,
                f"oci:{tmp_path / 'src'}:{tag}",
                f"docker://{upstream.host}/peer/app:{tag}",
                "--all",
            )
        prefix = unique_repo("from-distribution")
        ce.skopeo(
            "sync",
            "--all",
            "--src",
            "docker",
            "--dest",
            "docker",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"{upstream.host}/peer/app",
            f"{registry.host}/{prefix}",
        )

    # sync appends the last path component of the source repository to the destination.
    repo = f"{registry.host}/{prefix}/app"
    assert ce.inspect_raw(f"docker://{repo}:single") == img.manifest_bytes
    assert ce.inspect_raw(f"docker://{repo}:multi") == idx.index_bytes
    for child in idx.children:
        assert ce.inspect_raw(f"docker://{repo}@{child.manifest_digest}") == child.manifest_bytes


def test_login_without_auth_succeeds(registry: RunningRegistry, ce: ContainersEnv) -> None:
    """A registry without auth accepts any login (the client just checks /v2/)."""
    result = ce.skopeo(
        "login", "--tls-verify=false", "-u", "anyone", "-p", "anything", registry.host
    )
    assert "Login Succeeded" in result.stdout
    auths = json.loads(ce.auth_file.read_text())["auths"]
    assert registry.host in auths
    ce.skopeo("logout", registry.host)
    assert registry.host not in json.loads(ce.auth_file.read_text()).get("auths", {})
