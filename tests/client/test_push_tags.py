"""`dockyard push/copy --tag`: every tag in as few manifest PUTs as the registry allows (`?tag=`,
ten at a time, Dockyard), one PUT per tag where the registry ignores the parameter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.client.test_cli_images import dockyard, summary
from tests.support.images import write_oci_image
from tests.support.peers import Distribution, require
from tests.support.push import unique_repo
from tests.support.server import RunningRegistry

MANIFEST_ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}


@pytest.fixture(scope="module")
def plain_distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    require("docker-registry")
    server = Distribution(root=tmp_path_factory.mktemp("distribution")).start()
    yield server
    server.stop()


def tags_of(url: str, repo: str, digest: str) -> list[str]:
    """The repository's tags, each checked to name `digest`."""
    with httpx.Client(base_url=url) as http:
        tags = http.get(f"/v2/{repo}/tags/list").json()["tags"]
        for tag in tags:
            got = http.head(f"/v2/{repo}/manifests/{tag}", headers=MANIFEST_ACCEPT)
            assert got.headers["Docker-Content-Digest"] == digest, tag
    return sorted(tags)


def test_push_with_thirteen_tags_takes_two_manifest_puts(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    image = write_oci_image(tmp_path / "src", "v1", layers=1, seed="many-tags")
    repo = unique_repo("cli")
    extra = [f"t{i:02d}" for i in range(12)]
    args = [arg for tag in extra for arg in ("--tag", tag)]
    pushed = summary(
        dockyard("push", f"oci:{tmp_path / 'src'}:v1", f"{registry.host}/{repo}:v1",
                 *args, "--json", home=tmp_path)
    )  # fmt: skip
    assert pushed["digest"] == image.manifest_digest
    assert tags_of(registry.url, repo, image.manifest_digest) == sorted(["v1", *extra])
    puts = [line for line in registry.log().splitlines() if f'"PUT /v2/{repo}/manifests/' in line]
    assert len(puts) == 2, puts  # v1 and nine more, then three: never one request per tag
    assert all(f"/manifests/{image.manifest_digest}?tag=" in line for line in puts)


def test_copy_with_tags_to_a_registry_that_ignores_the_parameter(
    registry: RunningRegistry, plain_distribution: Distribution, tmp_path: Path
) -> None:
    image = write_oci_image(tmp_path / "src", "v1", layers=1, seed="tags-elsewhere")
    repo = unique_repo("cli")
    source = f"{registry.host}/{repo}:v1"
    dockyard("push", f"oci:{tmp_path / 'src'}:v1", source, "--quiet", home=tmp_path)
    target = f"{plain_distribution.host}/{repo}:v1"
    dockyard("copy", source, target, "-t", "stable", "-t", "1.0", "--quiet", home=tmp_path)
    tags = tags_of(plain_distribution.url, repo, image.manifest_digest)
    assert tags == ["1.0", "stable", "v1"]


def test_tags_need_a_tagged_registry_destination(tmp_path: Path, registry: RunningRegistry) -> None:
    write_oci_image(tmp_path / "src", "v1", layers=1, seed="tags-refused")
    local = dockyard("copy", f"oci:{tmp_path / 'src'}:v1", f"oci:{tmp_path / 'out'}:v1",
                     "--tag", "x", home=tmp_path, check=False)  # fmt: skip
    assert local.returncode != 0 and "--tag" in local.stderr
    bad = dockyard("push", f"oci:{tmp_path / 'src'}:v1", f"{registry.host}/{unique_repo()}:v1",
                   "--tag", "-bad", home=tmp_path, check=False)  # fmt: skip
    assert bad.returncode != 0 and "invalid tag '-bad'" in bad.stderr
