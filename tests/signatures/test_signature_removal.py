"""Issue 18: a removed signature takes effect at once. Each worker remembers the images it
found signed, but a remembered result is only as good as the signature it rests on: once the
`.sig` tag or the signature referrer is deleted, the next pull on every worker is DENIED, on
both backend pairs; signed again, the image is served again."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import s3_postgres_env
from tests.signatures.helpers import dockyard, get_manifest, key_pair, push_image
from tests.signatures.test_policy import policy, sig_tag
from tests.support.images import write_oci_index
from tests.support.server import RunningRegistry

# Pulls per check, each on a new connection: enough that both workers answer some.
ROUNDS = 12


@pytest.fixture(params=["filesystem+sqlite", "s3+postgresql"])
def two_workers(
    request: pytest.FixtureRequest, start_registry: Callable[..., RunningRegistry]
) -> RunningRegistry:
    env = {}
    if request.param == "s3+postgresql":
        env = s3_postgres_env(
            request.getfixturevalue("s3_server"),
            request.getfixturevalue("pg_cluster"),
            redirect=False,
        )
    return start_registry("--workers", "2", env=env)


def statuses(server: RunningRegistry, repo: str, reference: str) -> set[int]:
    return {get_manifest(server.url, repo, reference)[1].status_code for _ in range(ROUNDS)}


def test_a_deleted_sig_tag_or_referrer_denies_the_next_pull_on_every_worker(
    tmp_path: Path, two_workers: RunningRegistry
) -> None:
    server = two_workers
    home = tmp_path / "home"
    home.mkdir()
    ns = "gone" + uuid.uuid4().hex[:8]
    repo = f"{ns}/app"
    ref = f"{server.host}/{repo}"
    digest = push_image(home, server.host, repo)
    alice_key, alice_pub = key_pair(home, "alice")
    assert policy(server, ns, "--key", str(alice_pub)).returncode == 0

    # By the cosign tag: signed, pulled on both workers, the tag deleted, denied everywhere.
    dockyard("sign", "--key", str(alice_key), f"{ref}@{digest}", home=home)
    assert statuses(server, repo, "1.0") == {200}
    assert statuses(server, repo, digest) == {200}
    dockyard("delete", "--tag-only", f"{ref}:{sig_tag(digest)}", home=home)
    assert statuses(server, repo, "1.0") == {403}
    assert statuses(server, repo, digest) == {403}

    # Signed again, served again at once.
    dockyard("sign", "--key", str(alice_key), f"{ref}@{digest}", home=home)
    assert statuses(server, repo, "1.0") == {200}

    # By the referrer alone: the .sig tag goes, the referrer opens it; the referrer manifest
    # deleted by digest, denied everywhere.
    dockyard("delete", "--tag-only", f"{ref}:{sig_tag(digest)}", home=home)
    assert statuses(server, repo, "1.0") == {403}
    dockyard("sign", "--referrers", "--key", str(alice_key), f"{ref}@{digest}", home=home)
    dockyard("delete", "--tag-only", f"{ref}:{sig_tag(digest)}", home=home)
    assert statuses(server, repo, "1.0") == {200}
    with httpx.Client(base_url=server.url) as http:
        [referrer] = http.get(f"/v2/{repo}/referrers/{digest}").json()["manifests"]
    dockyard("delete", f"{ref}@{referrer['digest']}", home=home)
    assert statuses(server, repo, "1.0") == {403}

    # A .sig tag moved to a signature by another key no longer counts either.
    bob_key, _ = key_pair(home, "bob")
    dockyard("sign", "--key", str(alice_key), f"{ref}@{digest}", home=home)
    assert statuses(server, repo, "1.0") == {200}
    dockyard("delete", "--tag-only", f"{ref}:{sig_tag(digest)}", home=home)
    dockyard("sign", "--key", str(bob_key), f"{ref}@{digest}", home=home)
    assert statuses(server, repo, "1.0") == {403}


def test_a_child_of_a_deleted_signed_index_is_denied_at_once(
    tmp_path: Path, start_registry: Callable[..., RunningRegistry]
) -> None:
    server = start_registry("--workers", "2")
    home = tmp_path / "home"
    home.mkdir()
    ns = "gone" + uuid.uuid4().hex[:8]
    repo = f"{ns}/multi"
    ref = f"{server.host}/{repo}"
    alice_key, alice_pub = key_pair(home, "alice")
    assert policy(server, ns, "--key", str(alice_pub)).returncode == 0
    index = write_oci_index(home / "layout", "2.0", seed=ns, layers=1)
    dockyard("push", f"oci:{home / 'layout'}:2.0", f"{ref}:2.0", "--quiet", home=home)
    dockyard("sign", "--key", str(alice_key), f"{ref}@{index.index_digest}", home=home)
    child = index.children[0].manifest_digest
    assert statuses(server, repo, child) == {200}
    dockyard("delete", "--tag-only", f"{ref}:{sig_tag(index.index_digest)}", home=home)
    assert statuses(server, repo, child) == {403}
