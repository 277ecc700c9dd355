"""Issue 14, "Safer multi-arch": a manifest an index still needs is not deleted by accident, and
`dockyard manifest create` never builds an index with two images for one platform."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.client.api import one_image_per_platform
from dockyard.client.errors import UsageError
from tests.auth.conftest import QUIET
from tests.auth.helpers import ADMIN_PASSWORD, AuthRegistry, basic
from tests.auth.helpers import push_image as push_signed_image
from tests.support.images import write_oci_image, write_oci_index
from tests.support.peers import ContainersEnv, Distribution, require
from tests.support.peers import run as run_peer
from tests.support.push import (
    OCI_INDEX,
    OCI_MANIFEST,
    image_manifest,
    push_manifest,
    sha256,
    unique_repo,
)
from tests.support.server import RunningRegistry, free_port

IN_USE = 409
CAROL_PASSWORD = "carol-long-password"
RITA_PASSWORD = "rita-long-password"


def dockyard(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`python -m dockyard ARGS` with a private docker config; never raises on failure."""
    env = {**os.environ, "DOCKER_CONFIG": str(home / "docker"), "HOME": str(home)}
    env.pop("REGISTRY_AUTH_FILE", None)
    env.pop("XDG_RUNTIME_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="session")
def registry(registry_on_every_backend: RunningRegistry) -> RunningRegistry:
    """The refusal is decided in the metadata store's transaction: SQLite and PostgreSQL both."""
    return registry_on_every_backend


@pytest.fixture(scope="module")
def auth_reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    """`dockyard serve --auth` with carol (owner of carol/...) and rita (another account)."""
    base = tmp_path_factory.mktemp("auth-multiarch")
    server = RunningRegistry(
        data_dir=base / "data",
        port=free_port(),
        args=("--auth",),
        env={**QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
        log_dir=base,
    ).start()
    reg = AuthRegistry(server)
    reg.add_user("carol", CAROL_PASSWORD)
    reg.add_user("rita", RITA_PASSWORD)
    try:
        yield reg
    finally:
        server.stop()


def push_child(client: httpx.Client, repo: str, body: bytes | None = None) -> tuple[str, bytes]:
    body = body or image_manifest(client, repo)
    return push_manifest(client, repo, sha256(body), body), body


def index_of(*children: bytes, nonce: str = "") -> bytes:
    entries = [
        {
            "mediaType": OCI_MANIFEST,
            "digest": sha256(c),
            "size": len(c),
            "platform": {"os": "linux", "architecture": arch},
        }
        for c, arch in zip(children, ("amd64", "arm64", "s390x"), strict=False)
    ]
    doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    if nonce:
        doc["annotations"] = {"nonce": nonce}
    return json.dumps(doc).encode()


def multiarch(client: httpx.Client, repo: str) -> tuple[str, str, str]:
    """An index tagged `multi` over two children: (index, amd64 child, arm64 child) digests."""
    amd, amd_body = push_child(client, repo)
    arm, arm_body = push_child(client, repo)
    index = push_manifest(client, repo, "multi", index_of(amd_body, arm_body), OCI_INDEX)
    return index, amd, arm


def test_deleting_a_child_of_an_index_is_refused_naming_the_index(client: httpx.Client) -> None:
    repo = unique_repo("multi")
    index, amd, _ = multiarch(client, repo)
    resp = client.delete(f"/v2/{repo}/manifests/{amd}")
    assert resp.status_code == IN_USE, resp.text
    error = resp.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert index in error["message"]
    assert error["detail"] == {"digest": amd, "indexes": [index]}
    assert (
        client.get(f"/v2/{repo}/manifests/{amd}", headers={"Accept": OCI_MANIFEST}).status_code
        == 200
    )
    # The index is intact: every child it names is still served.
    assert (
        client.get(f"/v2/{repo}/manifests/multi", headers={"Accept": OCI_INDEX}).status_code == 200
    )


def test_every_referencing_index_is_named(client: httpx.Client) -> None:
    repo = unique_repo("multi")
    index, amd, _ = multiarch(client, repo)
    amd_body = client.get(f"/v2/{repo}/manifests/{amd}", headers={"Accept": OCI_MANIFEST}).content
    other = push_manifest(client, repo, "solo", index_of(amd_body, nonce="2"), OCI_INDEX)
    error = client.delete(f"/v2/{repo}/manifests/{amd}").json()["errors"][0]
    assert sorted(error["detail"]["indexes"]) == sorted([index, other])


def test_forced_delete_of_a_child_goes_through(client: httpx.Client) -> None:
    repo = unique_repo("multi")
    _, amd, arm = multiarch(client, repo)
    assert client.delete(f"/v2/{repo}/manifests/{amd}", params={"force": "true"}).status_code == 202
    assert client.get(f"/v2/{repo}/manifests/{amd}").status_code == 404
    # Anything but an explicit yes is no force.
    assert (
        client.delete(f"/v2/{repo}/manifests/{arm}", params={"force": "no"}).status_code == IN_USE
    )


def test_index_first_then_its_children(client: httpx.Client) -> None:
    repo = unique_repo("multi")
    index, amd, arm = multiarch(client, repo)
    assert client.delete(f"/v2/{repo}/manifests/{index}").status_code == 202
    assert client.delete(f"/v2/{repo}/manifests/{amd}").status_code == 202
    assert client.delete(f"/v2/{repo}/manifests/{arm}").status_code == 202


def test_deleting_only_a_tag_of_a_child_is_not_refused(client: httpx.Client) -> None:
    repo = unique_repo("multi")
    _, amd, _ = multiarch(client, repo)
    body = client.get(f"/v2/{repo}/manifests/{amd}", headers={"Accept": OCI_MANIFEST}).content
    push_manifest(client, repo, "amd", body)
    assert client.delete(f"/v2/{repo}/manifests/amd").status_code == 202
    assert (
        client.get(f"/v2/{repo}/manifests/{amd}", headers={"Accept": OCI_MANIFEST}).status_code
        == 200
    )


def test_an_index_in_another_repository_does_not_block(client: httpx.Client) -> None:
    mine, theirs = unique_repo("multi"), unique_repo("multi")
    amd, amd_body = push_child(client, mine)
    # The same child, byte for byte, in a second repository, where an index holds it.
    for blob in json.loads(amd_body)["layers"] + [json.loads(amd_body)["config"]]:
        mounted = client.post(
            f"/v2/{theirs}/blobs/uploads/", params={"mount": blob["digest"], "from": mine}
        )
        assert mounted.status_code == 201, mounted.text
    push_child(client, theirs, amd_body)
    push_manifest(client, theirs, "multi", index_of(amd_body), OCI_INDEX)
    assert client.delete(f"/v2/{mine}/manifests/{amd}").status_code == 202
    assert client.delete(f"/v2/{theirs}/manifests/{amd}").status_code == IN_USE


def race_once(registry: RunningRegistry, client: httpx.Client, nonce: str) -> None:
    repo = unique_repo("race")
    amd, amd_body = push_child(client, repo)
    _, arm_body = push_child(client, repo)
    answers: dict[str, int] = {}

    def put_index() -> None:
        with httpx.Client(base_url=registry.url, timeout=60) as c:
            answers["put"] = c.put(
                f"/v2/{repo}/manifests/multi",
                content=index_of(amd_body, arm_body, nonce=nonce),
                headers={"Content-Type": OCI_INDEX},
            ).status_code

    def delete_child() -> None:
        with httpx.Client(base_url=registry.url, timeout=60) as c:
            answers["delete"] = c.delete(f"/v2/{repo}/manifests/{amd}").status_code

    threads = [threading.Thread(target=put_index), threading.Thread(target=delete_child)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers.values()) in ([201, IN_USE], [202, 400]), answers
    if answers["put"] == 201:
        assert (
            client.get(f"/v2/{repo}/manifests/{amd}", headers={"Accept": OCI_MANIFEST}).status_code
            == 200
        )


def test_a_child_deleted_while_an_index_is_pushed_never_leaves_it_broken(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    """Whatever the interleaving, an index that was stored has every child it names."""
    for round_ in range(12):
        race_once(registry, client, str(round_))


def test_skopeo_delete_of_a_child_is_refused_with_the_json_error(
    client: httpx.Client, registry: RunningRegistry, tmp_path: Path
) -> None:
    repo = unique_repo("multi")
    index, amd, _ = multiarch(client, repo)
    env = ContainersEnv(root=tmp_path / "containers").setup()
    result = env.skopeo(
        "delete", "--tls-verify=false", f"docker://{registry.host}/{repo}@{amd}", check=False
    )
    assert result.returncode != 0
    assert "denied" in result.stderr.lower() and index in result.stderr, result.stderr
    assert (
        client.get(f"/v2/{repo}/manifests/{amd}", headers={"Accept": OCI_MANIFEST}).status_code
        == 200
    )


def test_dockyard_delete_names_the_index_and_force_deletes(
    client: httpx.Client, registry: RunningRegistry, tmp_path: Path
) -> None:
    repo = unique_repo("multi")
    index, amd, _ = multiarch(client, repo)
    ref = f"{registry.host}/{repo}@{amd}"
    refused = dockyard("delete", ref, home=tmp_path)
    assert refused.returncode == 4, (refused.stdout, refused.stderr)
    # Named so that it can be given to `dockyard delete` as it stands.
    assert f"{registry.host}/{repo}@{index}" in refused.stderr, refused.stderr
    assert "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    forced = dockyard("delete", "--force", ref, home=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert client.get(f"/v2/{repo}/manifests/{amd}").status_code == 404


def test_dockyard_delete_of_an_index_then_a_child(
    client: httpx.Client, registry: RunningRegistry, tmp_path: Path
) -> None:
    repo = unique_repo("multi")
    _, amd, _ = multiarch(client, repo)
    assert dockyard("delete", f"{registry.host}/{repo}:multi", home=tmp_path).returncode == 0
    assert dockyard("delete", f"{registry.host}/{repo}@{amd}", home=tmp_path).returncode == 0


def test_manifest_create_refuses_two_images_of_one_platform(
    registry: RunningRegistry, client: httpx.Client, tmp_path: Path
) -> None:
    first = write_oci_image(tmp_path / "a", "v1", seed="a", architecture="arm64", variant="v8")
    write_oci_image(tmp_path / "b", "v1", seed="b", architecture="amd64")
    write_oci_image(tmp_path / "c", "v1", seed="c", architecture="arm64", variant="v8")
    repo = unique_repo("create")
    target = f"{registry.host}/{repo}:multi"
    result = dockyard(
        "manifest",
        "create",
        target,
        f"oci:{tmp_path / 'a'}:v1",
        f"oci:{tmp_path / 'b'}:v1",
        f"oci:{tmp_path / 'c'}:v1",
        home=tmp_path,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "linux/arm64/v8" in result.stderr, result.stderr
    assert f"oci:{tmp_path / 'a'}:v1" in result.stderr
    assert f"oci:{tmp_path / 'c'}:v1" in result.stderr
    # Refused before anything was copied.
    assert client.get(f"/v2/{repo}/manifests/multi").status_code == 404
    assert client.get(f"/v2/{repo}/manifests/{first.manifest_digest}").status_code == 404


def test_manifest_create_refuses_an_index_and_an_image_sharing_a_platform(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    write_oci_index(
        tmp_path / "idx", "v1", seed="i", platforms=(("linux", "amd64"), ("linux", "arm64"))
    )
    write_oci_image(tmp_path / "one", "v1", seed="o", architecture="arm64")
    target = f"{registry.host}/{unique_repo('create')}:multi"
    result = dockyard(
        "manifest",
        "create",
        target,
        f"oci:{tmp_path / 'idx'}:v1",
        f"oci:{tmp_path / 'one'}:v1",
        home=tmp_path,
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "linux/arm64" in result.stderr and "linux/arm64/" not in result.stderr


def test_manifest_create_of_distinct_platforms_still_works(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    write_oci_image(tmp_path / "a", "v1", seed="a2", architecture="arm", variant="v7")
    write_oci_image(tmp_path / "b", "v1", seed="b2", architecture="arm", variant="v6")
    target = f"{registry.host}/{unique_repo('create')}:multi"
    result = dockyard(
        "manifest",
        "create",
        target,
        f"oci:{tmp_path / 'a'}:v1",
        f"oci:{tmp_path / 'b'}:v1",
        home=tmp_path,
    )
    assert result.returncode == 0, result.stderr


def test_only_a_caller_who_may_delete_can_force(auth_reg: AuthRegistry) -> None:
    carol = basic("carol", CAROL_PASSWORD)
    writer = basic("carol", auth_reg.create_token("carol", "ci-write", "write"))
    repo = "carol/multi"
    with auth_reg.client() as c:
        amd, amd_body = push_signed_image(c, repo, "amd", auth=carol)
        index = c.put(
            f"/v2/{repo}/manifests/multi",
            content=index_of(amd_body),
            headers={"Content-Type": OCI_INDEX, "Authorization": carol},
        )
        assert index.status_code == 201, index.text
        url = f"/v2/{repo}/manifests/{amd}"
        for who in (writer, basic("rita", RITA_PASSWORD), None):
            headers = {"Authorization": who} if who else {}
            resp = c.delete(url, params={"force": "true"}, headers=headers)
            assert resp.status_code in (401, 403, 404), resp.text
        assert (
            c.get(url, headers={"Authorization": carol, "Accept": OCI_MANIFEST}).status_code == 200
        )
        refused = c.delete(url, headers={"Authorization": carol})
        assert refused.status_code == IN_USE
        assert refused.json()["errors"][0]["detail"]["indexes"] == [
            index.headers["Docker-Content-Digest"]
        ]
        forced = c.delete(url, params={"force": "true"}, headers={"Authorization": carol})
        assert forced.status_code == 202, forced.text


def test_crane_delete_of_a_child_is_refused_naming_the_index(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    repo = unique_repo("multi")
    index, amd, _ = multiarch(client, repo)
    result = run_peer(
        [require("crane"), "delete", "--insecure", f"{registry.host}/{repo}@{amd}"],
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert "DENIED" in result.stderr and index in result.stderr, result.stderr


def test_manifest_create_names_an_index_source_that_repeats_a_platform(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    write_oci_index(
        tmp_path / "idx", "v1", seed="r", platforms=(("linux", "amd64"), ("linux", "amd64"))
    )
    target = f"{registry.host}/{unique_repo('create')}:multi"
    result = dockyard("manifest", "create", target, f"oci:{tmp_path / 'idx'}:v1", home=tmp_path)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert f"linux/amd64 is given twice in oci:{tmp_path / 'idx'}:v1" in result.stderr


def test_an_index_inside_an_index_is_held_too(client: httpx.Client) -> None:
    repo = unique_repo("nested")
    inner, _, _ = multiarch(client, repo)
    inner_body = client.get(f"/v2/{repo}/manifests/{inner}", headers={"Accept": OCI_INDEX}).content
    outer_doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_INDEX, "digest": inner, "size": len(inner_body)}],
    }
    outer = push_manifest(client, repo, "outer", json.dumps(outer_doc).encode(), OCI_INDEX)
    refused = client.delete(f"/v2/{repo}/manifests/{inner}")
    assert refused.status_code == IN_USE
    assert refused.json()["errors"][0]["detail"]["indexes"] == [outer]
    for digest in (outer, inner):
        assert client.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202


def entry(os_name: str, arch: str, **extra: str) -> dict:
    annotations = (
        {"vnd.docker.reference.type": extra.pop("ref_type")} if "ref_type" in extra else {}
    )
    return {
        "digest": "sha256:" + "0" * 64,
        "platform": {"os": os_name, "architecture": arch, **extra},
        "annotations": annotations,
    }


def test_attestations_and_os_versions_are_not_duplicate_platforms() -> None:
    entries = [
        entry("linux", "amd64"),
        entry("unknown", "unknown", ref_type="attestation-manifest"),
        entry("linux", "arm64"),
        entry("unknown", "unknown", ref_type="attestation-manifest"),
        entry("windows", "amd64", **{"os.version": "10.0.17763.1"}),
        entry("windows", "amd64", **{"os.version": "10.0.20348.1"}),
        {"digest": "sha256:" + "1" * 64},
    ]
    one_image_per_platform(
        entries, [(0, "a")] * 2 + [(1, "b")] * 2 + [(2, "c"), (3, "d"), (4, "e")]
    )


def test_the_same_source_named_twice_is_said_so() -> None:
    with pytest.raises(UsageError, match="linux/amd64 is given twice: oci:a is named more than"):
        one_image_per_platform([entry("linux", "amd64")] * 2, [(0, "oci:a"), (1, "oci:a")])
    with pytest.raises(UsageError, match=r"windows/amd64 \(os.version 10.0.1\) is given by both"):
        one_image_per_platform(
            [entry("windows", "amd64", **{"os.version": "10.0.1"})] * 2, [(0, "x"), (1, "y")]
        )


def test_dockyard_delete_force_is_harmless_on_cncf_distribution(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """Distribution ignores the parameter (and deletes children anyway): --force still works."""
    require("docker-registry")
    server = Distribution(root=tmp_path_factory.mktemp("distribution")).start()
    try:
        built = write_oci_index(tmp_path / "idx", "v1", seed="dist")
        repo = f"{server.host}/{unique_repo('multi')}"
        pushed = dockyard(
            "push", "--quiet", f"oci:{tmp_path / 'idx'}:v1", f"{repo}:v1", home=tmp_path
        )
        assert pushed.returncode == 0, pushed.stderr
        child = built.children[0].manifest_digest
        forced = dockyard("delete", "--force", f"{repo}@{child}", home=tmp_path)
        assert forced.returncode == 0, forced.stderr
        assert forced.stdout.strip() == f"deleted {repo}@{child}"
    finally:
        server.stop()
