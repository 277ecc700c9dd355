"""podman and buildah against Dockyard: build, commit, push, pull, multi-arch manifest lists.

Each test runs the tools with private vfs storage (tests.support.peers.ContainersEnv); nothing
runs a container (`podman run` is not available in the sandbox), content is checked by mounting
images with `buildah mount`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import images
from tests.support.images import MT_DOCKER_LIST, MT_DOCKER_MANIFEST, MT_OCI_INDEX, MT_OCI_MANIFEST
from tests.support.peers import ContainersEnv, containers_env, require, unique_repo
from tests.support.server import RunningRegistry

TLS = "--tls-verify=false"


@pytest.fixture
def ce(tmp_path: Path) -> Iterator[ContainersEnv]:
    for binary in ("podman", "buildah", "skopeo"):
        require(binary)
    with containers_env(tmp_path / "containers") as env:
        yield env


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[ContainersEnv]:
    """A second, empty storage: pulls there really come from the registry."""
    with containers_env(tmp_path / "fresh") as env:
        yield env


def image_files(ce: ContainersEnv, image: str) -> dict[str, bytes]:
    """Regular files of a local image, read through a buildah working container's mount."""
    ctr = ce.buildah("from", "--pull-never", image).stdout.strip()
    try:
        root = Path(ce.buildah("mount", ctr).stdout.strip())
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()
        }
    finally:
        ce.buildah("rm", ctr, check=False)


def inspect_local(ce: ContainersEnv, image: str) -> dict:
    return json.loads(ce.podman("image", "inspect", image).stdout)[0]


def build_scratch_image(
    ce: ContainersEnv,
    workdir: Path,
    name: str,
    *,
    arch: str = "amd64",
    files: dict[str, bytes],
    label: str = "scratch",
) -> str:
    """buildah from scratch + copy + config + commit --format oci; returns the image id."""
    workdir.mkdir(parents=True, exist_ok=True)
    ctr = ce.buildah("from", "scratch").stdout.strip()
    try:
        for dest, data in files.items():
            src = workdir / Path(dest).name
            src.write_bytes(data)
            ce.buildah("copy", ctr, str(src), "/" + dest)
        ce.buildah(
            "config",
            "--arch",
            arch,
            "--os",
            "linux",
            "--label",
            f"org.dockyard.test={label}",
            "--env",
            "GREETING=hello",
            "--entrypoint",
            '["/bin/true"]',
            "--workingdir",
            "/",
            ctr,
        )
        return ce.buildah("commit", "--format", "oci", ctr, name).stdout.strip().splitlines()[-1]
    finally:
        ce.buildah("rm", ctr, check=False)


def test_buildah_scratch_commit_push_and_podman_pull(
    registry: RunningRegistry, ce: ContainersEnv, fresh: ContainersEnv, tmp_path: Path
) -> None:
    files = {"hello.txt": b"hello from buildah\n", "etc/motd": b"dockyard interop\n"}
    image_id = build_scratch_image(
        ce, tmp_path / "ctx", "localhost/scratch-app:1", files=files, label="buildah-push"
    )
    repo = unique_repo("buildah-push")
    digest_file = tmp_path / "digest"

    ce.buildah(
        "push",
        TLS,
        "--digestfile",
        str(digest_file),
        "localhost/scratch-app:1",
        f"docker://{registry.host}/{repo}:1",
    )

    ref = f"docker://{registry.host}/{repo}:1"
    raw = ce.inspect_raw(ref)
    assert images.sha256_digest(raw) == digest_file.read_text().strip()
    manifest = json.loads(raw)
    assert manifest["mediaType"] == MT_OCI_MANIFEST
    config = json.loads(ce.inspect_raw(ref, "--config"))
    assert images.sha256_digest(ce.inspect_raw(ref, "--config")) == f"sha256:{image_id}"
    assert config["config"]["Labels"]["org.dockyard.test"] == "buildah-push"
    assert "GREETING=hello" in config["config"]["Env"]

    fresh.podman("pull", TLS, f"{registry.host}/{repo}:1")
    pulled = inspect_local(fresh, f"{registry.host}/{repo}:1")
    assert pulled["Id"] == image_id
    assert pulled["Digest"] == digest_file.read_text().strip()
    assert image_files(fresh, f"{registry.host}/{repo}:1") == files


def test_podman_pull_push_v2s2_and_pull_back(
    registry: RunningRegistry, ce: ContainersEnv, fresh: ContainersEnv, tmp_path: Path
) -> None:
    img = images.write_oci_image(tmp_path / "src", "v1", seed="podman-v2s2", layers=2)
    src_repo, v2_repo = unique_repo("podman-src"), unique_repo("podman-v2s2")
    ce.skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{tmp_path / 'src'}:v1",
        f"docker://{registry.host}/{src_repo}:v1",
    )

    ce.podman("pull", TLS, f"{registry.host}/{src_repo}:v1")
    pulled = inspect_local(ce, f"{registry.host}/{src_repo}:v1")
    assert pulled["Digest"] == img.manifest_digest
    assert f"sha256:{pulled['Id']}" == img.config_digest

    digest_file = tmp_path / "digest"
    ce.podman(
        "push",
        TLS,
        "--format",
        "v2s2",
        "--digestfile",
        str(digest_file),
        f"{registry.host}/{src_repo}:v1",
        f"docker://{registry.host}/{v2_repo}:v2",
    )
    pushed_digest = digest_file.read_text().strip()
    raw = ce.inspect_raw(f"docker://{registry.host}/{v2_repo}:v2")
    assert images.sha256_digest(raw) == pushed_digest
    manifest = json.loads(raw)
    assert manifest["mediaType"] == MT_DOCKER_MANIFEST
    assert manifest["config"]["digest"] == img.config_digest  # config bytes survive conversion
    assert len(manifest["layers"]) == 2

    fresh.podman("pull", TLS, f"{registry.host}/{v2_repo}:v2")
    again = inspect_local(fresh, f"{registry.host}/{v2_repo}:v2")
    assert again["Digest"] == pushed_digest
    assert again["Id"] == pulled["Id"]
    assert image_files(fresh, f"{registry.host}/{v2_repo}:v2") == img.files


def test_podman_pull_platform_from_oci_index(
    registry: RunningRegistry, ce: ContainersEnv, tmp_path: Path
) -> None:
    idx = images.write_oci_index(tmp_path / "src", "multi", seed="podman-arch")
    repo = unique_repo("podman-arch")
    ce.skopeo(
        "copy",
        "--all",
        "--dest-tls-verify=false",
        f"oci:{tmp_path / 'src'}:multi",
        f"docker://{registry.host}/{repo}:multi",
    )

    ce.podman("pull", TLS, "--arch", "arm64", f"{registry.host}/{repo}:multi")

    arm = idx.child("arm64")
    info = inspect_local(ce, f"{registry.host}/{repo}:multi")
    assert info["Architecture"] == "arm64"
    assert f"sha256:{info['Id']}" == arm.config_digest
    assert f"{registry.host}/{repo}@{arm.manifest_digest}" in info["RepoDigests"]
    assert image_files(ce, f"{registry.host}/{repo}:multi") == arm.files


def test_podman_manifest_push_all(
    registry: RunningRegistry, ce: ContainersEnv, fresh: ContainersEnv, tmp_path: Path
) -> None:
    per_arch = {arch: {"arch.txt": f"built for {arch}\n".encode()} for arch in ("amd64", "arm64")}
    for arch, files in per_arch.items():
        build_scratch_image(
            ce,
            tmp_path / arch,
            f"localhost/multi-app:{arch}",
            arch=arch,
            files=files,
            label=f"multi-{arch}",
        )
    ce.podman("manifest", "create", "localhost/multi-app:list")
    for arch in per_arch:
        ce.podman(
            "manifest",
            "add",
            "localhost/multi-app:list",
            f"containers-storage:localhost/multi-app:{arch}",
        )
    repo = unique_repo("podman-manifest")
    digest_file = tmp_path / "digest"

    ce.podman(
        "manifest",
        "push",
        TLS,
        "--all",
        "--digestfile",
        str(digest_file),
        "localhost/multi-app:list",
        f"docker://{registry.host}/{repo}:list",
    )

    ref = f"docker://{registry.host}/{repo}:list"
    raw = ce.inspect_raw(ref)
    assert images.sha256_digest(raw) == digest_file.read_text().strip()
    index = json.loads(raw)
    assert index["mediaType"] in (MT_OCI_INDEX, MT_DOCKER_LIST)
    platforms = {m["platform"]["architecture"]: m for m in index["manifests"]}
    assert set(platforms) == {"amd64", "arm64"}
    for arch, descriptor in platforms.items():
        child = ce.inspect_raw(f"docker://{registry.host}/{repo}@{descriptor['digest']}")
        assert images.sha256_digest(child) == descriptor["digest"]
        assert len(child) == descriptor["size"]
        config = json.loads(
            ce.inspect_raw(f"docker://{registry.host}/{repo}@{descriptor['digest']}", "--config")
        )
        assert config["architecture"] == arch

    fresh.podman("pull", TLS, "--arch", "arm64", f"{registry.host}/{repo}:list")
    assert inspect_local(fresh, f"{registry.host}/{repo}:list")["Architecture"] == "arm64"
    assert image_files(fresh, f"{registry.host}/{repo}:list") == per_arch["arm64"]


def test_buildah_build_containerfile(
    registry: RunningRegistry, ce: ContainersEnv, fresh: ContainersEnv, tmp_path: Path
) -> None:
    base_ctx, app_ctx = tmp_path / "base", tmp_path / "app"
    base_ctx.mkdir()
    app_ctx.mkdir()
    (base_ctx / "base.txt").write_text("base layer\n")
    (base_ctx / "Containerfile").write_text(
        "FROM scratch\nCOPY base.txt /base.txt\nLABEL org.dockyard.stage=base\nENV STAGE=base\n"
    )
    base_repo, app_repo = unique_repo("buildah-base"), unique_repo("buildah-app")

    ce.buildah("build", "--format", "oci", "-t", "localhost/base:1", str(base_ctx))
    ce.buildah("push", TLS, "localhost/base:1", f"docker://{registry.host}/{base_repo}:1")

    # A second build FROM the image in our registry, pulled by buildah itself.
    (app_ctx / "app.txt").write_text("app layer\n")
    (app_ctx / "Containerfile").write_text(
        f"FROM {registry.host}/{base_repo}:1\nCOPY app.txt /app.txt\nLABEL org.dockyard.stage=app\n"
    )
    fresh.buildah("build", TLS, "--format", "oci", "-t", "localhost/app:1", str(app_ctx))
    fresh.buildah("push", TLS, "localhost/app:1", f"docker://{registry.host}/{app_repo}:1")

    manifest = fresh.inspect_json(f"docker://{registry.host}/{app_repo}:1")
    assert manifest["mediaType"] == MT_OCI_MANIFEST
    assert len(manifest["layers"]) == 2
    config = json.loads(fresh.inspect_raw(f"docker://{registry.host}/{app_repo}:1", "--config"))
    assert config["config"]["Labels"]["org.dockyard.stage"] == "app"
    assert "STAGE=base" in config["config"]["Env"]

    ce.podman("pull", TLS, f"{registry.host}/{app_repo}:1")
    assert image_files(ce, f"{registry.host}/{app_repo}:1") == {
        "base.txt": b"base layer\n",
        "app.txt": b"app layer\n",
    }


@pytest.mark.parametrize("tool", ["podman", "buildah"])
def test_login_without_auth_succeeds(
    registry: RunningRegistry, ce: ContainersEnv, tool: str
) -> None:
    """No-auth registries accept any credentials: login checks /v2/ and stores them."""
    result = ce.run(tool, "login", TLS, "-u", "anyone", "-p", "anything", registry.host)
    assert "Login Succeeded" in result.stdout
    assert registry.host in json.loads(ce.auth_file.read_text())["auths"]
    ce.run(tool, "logout", registry.host)
    assert registry.host not in json.loads(ce.auth_file.read_text()).get("auths", {})
