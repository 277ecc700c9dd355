"""The `dockyard` image commands end to end, against Dockyard and CNCF Distribution, checked
with skopeo: digests identical both ways, nothing re-sent, resumed uploads, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.flaky_proxy import FlakyProxy
from tests.support.images import write_oci_image, write_oci_index
from tests.support.peers import ContainersEnv, Distribution, containers_env, require
from tests.support.push import unique_repo
from tests.support.server import RunningRegistry


def dockyard(
    *args: str, home: Path, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_CONFIG": str(home / "docker"), "HOME": str(home)}
    env.pop("REGISTRY_AUTH_FILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env=env,
        input=input,
        timeout=300,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"dockyard {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


def summary(result: subprocess.CompletedProcess[str]) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    require("docker-registry")
    server = Distribution(
        root=tmp_path_factory.mktemp("distribution"), users={"demo": "demo-password"}
    ).start()
    yield server
    server.stop()


@pytest.fixture
def ce(tmp_path: Path) -> Iterator[ContainersEnv]:
    with containers_env(tmp_path / "ce") as env:
        yield env


def upload_requests(log: str, repo: str) -> int:
    """Requests in the server's access log that carried blob bytes into `repo`."""
    carrying = (
        f'"PATCH /v2/{repo}/blobs/uploads/',
        f'"PUT /v2/{repo}/blobs/uploads/',
        f'"POST /v2/{repo}/blobs/uploads/?digest=',
    )
    return sum(1 for line in log.splitlines() if any(c in line for c in carrying))


def test_push_then_skopeo_pull_then_second_push_sends_nothing(
    registry: RunningRegistry, tmp_path: Path, ce: ContainersEnv
) -> None:
    image = write_oci_image(tmp_path / "src", "v1", layers=3, file_size=100_000)
    repo = unique_repo("cli")
    ref = f"{registry.host}/{repo}:v1"
    first = summary(dockyard("push", f"oci:{tmp_path / 'src'}:v1", ref, "--json", home=tmp_path))
    assert first["digest"] == image.manifest_digest and first["blobs_transferred"] == 4
    raw = ce.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}", text=False)
    assert raw.stdout == image.manifest_bytes
    before = upload_requests(registry.log(), repo)
    second = summary(dockyard("push", f"oci:{tmp_path / 'src'}:v1", ref, "--json", home=tmp_path))
    assert second["bytes_transferred"] == 0 and second["blobs_skipped"] == 4
    assert upload_requests(registry.log(), repo) == before, "the second push uploaded blobs"


def test_skopeo_push_then_dockyard_pull_to_layout_and_docker_archive(
    registry: RunningRegistry, tmp_path: Path, ce: ContainersEnv
) -> None:
    image = write_oci_image(tmp_path / "src", "v1", seed="skopeo-side")
    ref = f"{registry.host}/{unique_repo('cli')}:v1"
    ce.skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", f"docker://{ref}")
    pulled = summary(dockyard("pull", ref, f"oci:{tmp_path / 'out'}:v1", "--json", home=tmp_path))
    assert pulled["digest"] == image.manifest_digest
    back = ce.skopeo("inspect", "--raw", f"oci:{tmp_path / 'out'}:v1", text=False)
    assert back.stdout == image.manifest_bytes
    dockyard("pull", ref, f"docker-archive:{tmp_path / 'app.tar'}:me/app:v1", "-q", home=tmp_path)
    config = json.loads(
        ce.skopeo("inspect", "--config", f"docker-archive:{tmp_path / 'app.tar'}").stdout
    )
    assert config["architecture"] == image.architecture


def test_multi_platform_all_and_one(
    registry: RunningRegistry, tmp_path: Path, ce: ContainersEnv
) -> None:
    index = write_oci_index(tmp_path / "multi", "v1")
    ref = f"{registry.host}/{unique_repo('cli')}:v1"
    pushed = summary(dockyard("push", f"oci:{tmp_path / 'multi'}:v1", ref, "--json", home=tmp_path))
    assert pushed["digest"] == index.index_digest
    raw = ce.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}", text=False)
    assert raw.stdout == index.index_bytes
    every = summary(
        dockyard("pull", ref, f"oci:{tmp_path / 'all'}:v1", "--all", "--json", home=tmp_path)
    )
    assert every["digest"] == index.index_digest
    assert sorted(every["platforms"]) == ["linux/amd64", "linux/arm64"]
    one = summary(
        dockyard(
            "pull",
            ref,
            f"oci:{tmp_path / 'arm'}:v1",
            "--platform",
            "linux/arm64",
            "--json",
            home=tmp_path,
        )
    )
    assert one["digest"] == index.child("arm64").manifest_digest
    missing = dockyard(
        "pull",
        ref,
        f"oci:{tmp_path / 'x'}:v1",
        "--platform",
        "linux/s390x",
        home=tmp_path,
        check=False,
    )
    assert missing.returncode == 1 and "linux/arm64" in missing.stderr


def test_login_copy_between_registries_and_tag(
    registry: RunningRegistry, distribution: Distribution, tmp_path: Path, ce: ContainersEnv
) -> None:
    image = write_oci_image(tmp_path / "src", "v1", seed="between")
    ours = f"{registry.host}/{unique_repo('cli')}"
    theirs = f"{distribution.host}/{unique_repo('cli')}"
    dockyard("push", f"oci:{tmp_path / 'src'}:v1", f"{ours}:v1", "-q", home=tmp_path)
    denied = dockyard("copy", f"{ours}:v1", f"{theirs}:v1", home=tmp_path, check=False)
    assert denied.returncode == 4 and "dockyard login" in denied.stderr
    wrong = dockyard(
        "login",
        distribution.host,
        "-u",
        "demo",
        "--password-stdin",
        input="nope\n",
        home=tmp_path,
        check=False,
    )
    assert wrong.returncode == 4 and "nope" not in wrong.stderr + wrong.stdout
    dockyard(
        "login",
        distribution.host,
        "-u",
        "demo",
        "--password-stdin",
        input="demo-password\n",
        home=tmp_path,
    )
    copied = summary(dockyard("copy", f"{ours}:v1", f"{theirs}:v1", "--json", home=tmp_path))
    assert copied["digest"] == image.manifest_digest
    ce.skopeo("login", "--tls-verify=false", "-u", "demo", "-p", "demo-password", distribution.host)
    raw = ce.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{theirs}:v1", text=False)
    assert raw.stdout == image.manifest_bytes
    back = summary(dockyard("copy", f"{theirs}:v1", f"{ours}:back", "--json", home=tmp_path))
    assert back["digest"] == image.manifest_digest
    before = upload_requests(registry.log(), ours.split("/", 1)[1])
    dockyard("tag", f"{ours}:v1", f"{ours}:stable", home=tmp_path)
    assert upload_requests(registry.log(), ours.split("/", 1)[1]) == before
    assert dockyard("tags", ours, home=tmp_path).stdout.split() == ["back", "stable", "v1"]


def test_push_resumes_after_the_connection_drops(registry: RunningRegistry, tmp_path: Path) -> None:
    image = write_oci_image(tmp_path / "src", "v1", layers=1, file_size=12_000_000, seed="resume")
    layer_size = image.layers[0].size
    assert layer_size > 8 * 1024 * 1024, "the layer must be large enough for a chunked upload"
    with FlakyProxy(upstream_port=registry.port, cut_after=layer_size // 2) as proxy:
        ref = f"{proxy.host}/{unique_repo('cli')}:v1"
        pushed = summary(
            dockyard("push", f"oci:{tmp_path / 'src'}:v1", ref, "--json", home=tmp_path)
        )
        assert proxy.cuts_done == 1
    assert pushed["digest"] == image.manifest_digest
    pulled = summary(
        dockyard(
            "pull",
            f"{registry.host}/{ref.split('/', 1)[1]}",
            f"oci:{tmp_path / 'back'}:v1",
            "--json",
            home=tmp_path,
        )
    )
    assert pulled["digest"] == image.manifest_digest


def test_inspect_delete_manifest_create_and_errors(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    index = write_oci_index(tmp_path / "multi", "v1", seed="create")
    repo = f"{registry.host}/{unique_repo('cli')}"
    for image in index.children:
        write_oci_image(
            tmp_path / image.architecture, "v1", seed="create", architecture=image.architecture
        )
    created = dockyard(
        "manifest",
        "create",
        f"{repo}:multi",
        f"oci:{tmp_path / 'amd64'}:v1",
        f"oci:{tmp_path / 'arm64'}:v1",
        "--annotation",
        "a=b",
        home=tmp_path,
    )
    assert f"{repo}@sha256:" in created.stdout
    shown = json.loads(dockyard("inspect", f"{repo}:multi", home=tmp_path).stdout)
    assert [p["platform"]["architecture"] for p in shown["platforms"]] == ["amd64", "arm64"]
    raw = dockyard("inspect", "--raw", f"{repo}:multi", home=tmp_path).stdout
    assert json.loads(raw)["annotations"] == {"a": "b"}
    assert (
        dockyard("catalog", registry.host, home=tmp_path).stdout.count(repo.split("/", 1)[1]) == 1
    )
    dockyard("delete", f"{repo}:multi", home=tmp_path)
    gone = dockyard("inspect", f"{repo}:multi", home=tmp_path, check=False)
    assert gone.returncode == 3
    bad = dockyard("pull", "Not A Reference", home=tmp_path, check=False)
    assert bad.returncode == 2
    parts = json.loads(dockyard("ref", "parse", "alpine", home=tmp_path).stdout)
    assert parts["canonical"] == "docker.io/library/alpine:latest"
    down = dockyard("inspect", "127.0.0.1:1/x:1", home=tmp_path, check=False)
    assert down.returncode == 1 and "cannot connect" in down.stderr


def test_login_push_pull_against_dockyard_token_auth(
    start_registry, tmp_path: Path, ce: ContainersEnv
) -> None:
    server = start_registry("--auth", env={"DOCKYARD_ADMIN_PASSWORD": "admin-pw"})
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "user",
            "add",
            "carol",
            "--password-stdin",
            "--data-dir",
            str(server.data_dir),
        ],
        input="carol-pw\n",
        check=True,
        capture_output=True,
        text=True,
    )
    image = write_oci_image(tmp_path / "src", "v1", seed="token-auth")
    ref = f"{server.host}/carol/app:v1"
    anonymous = dockyard("push", f"oci:{tmp_path / 'src'}:v1", ref, home=tmp_path, check=False)
    assert anonymous.returncode == 4
    dockyard(
        "login", server.host, "-u", "carol", "--password-stdin", input="carol-pw\n", home=tmp_path
    )
    stored = json.loads((tmp_path / "docker" / "config.json").read_text())
    assert server.host in stored["auths"] and "carol-pw" not in json.dumps(stored)
    pushed = summary(dockyard("push", f"oci:{tmp_path / 'src'}:v1", ref, "--json", home=tmp_path))
    assert pushed["digest"] == image.manifest_digest
    pulled = summary(dockyard("pull", ref, f"oci:{tmp_path / 'back'}:v1", "--json", home=tmp_path))
    assert pulled["digest"] == image.manifest_digest
    ce.skopeo("login", "--tls-verify=false", "-u", "carol", "-p", "carol-pw", server.host)
    raw = ce.skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}", text=False)
    assert raw.stdout == image.manifest_bytes
    dockyard("logout", server.host, home=tmp_path)
    after = dockyard("pull", ref, f"oci:{tmp_path / 'again'}:v1", home=tmp_path, check=False)
    assert after.returncode == 4 and "dockyard login" in after.stderr
