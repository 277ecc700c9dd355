"""Issue 18's proof of the policy with real pullers: under `enforce`, skopeo and podman cannot
pull an unsigned image from a registry of two workers; once `dockyard sign` signs it, both pull
it at once, without a restart, whichever worker answers; a policy removed or set again is seen
by every worker at once too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.signatures.helpers import dockyard, get_manifest, key_pair, push_image
from tests.signatures.test_policy import policy
from tests.support.peers import ContainersEnv, containers_env, require

TLS = "--tls-verify=false"
# Enough requests that both workers answer some (connections are spread between them).
ROUNDS = 12


@pytest.fixture
def ce(tmp_path: Path) -> Iterator[ContainersEnv]:
    for binary in ("podman", "skopeo"):
        require(binary)
    with containers_env(tmp_path / "containers") as env:
        yield env


def test_skopeo_and_podman_pull_once_signed_on_two_workers(
    tmp_path: Path, ce: ContainersEnv, start_registry
) -> None:
    server = start_registry("--workers", "2")
    home = tmp_path / "home"
    home.mkdir()
    repo = "shipped/app"
    digest = push_image(home, server.host, repo)
    alice_key, alice_pub = key_pair(home, "alice")
    assert policy(server, "shipped", "--key", str(alice_pub)).returncode == 0
    ref = f"{server.host}/{repo}:1.0"

    copied = ce.skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{ref}",
        f"oci:{tmp_path / 'skopeo'}:a",
        check=False,
    )
    assert copied.returncode != 0
    assert "has no valid signature required by the signature policy on shipped" in copied.stderr
    pulled = ce.podman("pull", TLS, ref, check=False)
    assert pulled.returncode != 0
    for _ in range(ROUNDS):
        assert get_manifest(server.url, repo, "1.0")[1].status_code == 403

    dockyard("sign", "--key", str(alice_key), ref, home=home)
    for _ in range(ROUNDS):
        assert get_manifest(server.url, repo, "1.0")[1].status_code == 200
    ce.skopeo("copy", "--src-tls-verify=false", f"docker://{ref}", f"oci:{tmp_path / 'skopeo'}:a")
    ce.podman("pull", TLS, ref)
    inspected = ce.podman("image", "inspect", "--format", "{{.Digest}}", ref).stdout.strip()
    assert inspected == digest

    # A new policy (another key only) is a new version: the remembered result no longer counts.
    _, bob_pub = key_pair(home, "bob")
    assert policy(server, "shipped", "--key", str(bob_pub)).returncode == 0
    for _ in range(ROUNDS):
        assert get_manifest(server.url, repo, "1.0")[1].status_code == 403
    assert policy(server, "shipped", "--key", str(bob_pub), "--key", str(alice_pub)).returncode == 0
    for _ in range(ROUNDS):
        assert get_manifest(server.url, repo, "1.0")[1].status_code == 200
