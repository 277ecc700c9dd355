"""skopeo and podman pulling through the cache, by prefixed name and as a registry mirror."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.proxy.helpers import Shared, make_image, unique
from tests.support.images import read_layout_blob, read_layout_ref
from tests.support.peers import ContainersEnv, containers_env, require


@pytest.fixture
def ce(tmp_path: Path) -> Iterator[ContainersEnv]:
    with containers_env(tmp_path / "containers") as env:
        yield env


def test_skopeo_pulls_prefixed_and_mirrored_names(
    shared: Shared, ce: ContainersEnv, tmp_path: Path
) -> None:
    require("skopeo")
    host = shared.cache.host
    for mode, name in (("prefixed", "up/{repo}"), ("mirror", "{repo}")):
        repo = unique("library")
        image = make_image(tmp_path, mode)
        shared.up.push_image(repo, "v1", image)
        out = tmp_path / f"out-{mode}"
        ce.skopeo(
            "copy",
            "--src-tls-verify=false",
            f"docker://{host}/{name.format(repo=repo)}:v1",
            f"oci:{out}:v1",
        )
        assert read_layout_ref(out, "v1")["digest"] == image.manifest_digest, mode
        for digest in image.blob_digests:
            read_layout_blob(out, digest)  # present and matching its digest
        # It came through the cache: the upstream served this repository's blobs.
        assert shared.up.proxy.matching("GET", f"/v2/{repo}/blobs/{image.layers[0].digest}")
        tags = ce.skopeo(
            "list-tags", "--tls-verify=false", f"docker://{host}/{name.format(repo=repo)}"
        ).stdout
        assert '"v1"' in tags


def test_podman_pulls_prefixed_and_through_a_mirror_entry(
    shared: Shared, ce: ContainersEnv, tmp_path: Path
) -> None:
    require("podman")
    host = shared.cache.host
    prefixed, mirrored = unique("library"), unique("library")
    images = {repo: make_image(tmp_path, repo.replace("/", "-")) for repo in (prefixed, mirrored)}
    for repo, image in images.items():
        shared.up.push_image(repo, "v1", image)

    # Prefixed: the cache's own name for the upstream's repository.
    ce.podman("pull", "--tls-verify=false", f"{host}/up/{prefixed}:v1")
    digest = ce.podman(
        "image", "inspect", "--format", "{{.Digest}}", f"{host}/up/{prefixed}:v1"
    ).stdout.strip()
    assert digest == images[prefixed].manifest_digest

    # Mirror: podman asks the cache first for a registry that does not exist anywhere, as
    # containers' registries.conf `[[registry.mirror]]` (docker's registry-mirrors) does.
    with ce.registries_conf.open("a") as conf:
        conf.write(
            '[[registry]]\nprefix = "upstream.invalid"\nlocation = "upstream.invalid"\n'
            f'[[registry.mirror]]\nlocation = "{host}"\ninsecure = true\n'
        )
    ce.podman("pull", f"upstream.invalid/{mirrored}:v1")
    digest = ce.podman(
        "image", "inspect", "--format", "{{.Digest}}", f"upstream.invalid/{mirrored}:v1"
    ).stdout.strip()
    assert digest == images[mirrored].manifest_digest
    assert shared.up.proxy.matching("GET", f"/v2/{mirrored}/manifests/")
