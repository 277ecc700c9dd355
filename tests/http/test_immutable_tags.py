"""Immutable tags over the Distribution API, with rules set by `dockyard policy immutable` on
the data folder of the running registry, on each backend pair."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.peers import require
from tests.support.peers import run as run_peer
from tests.support.push import OCI_MANIFEST, error_code, image_manifest, push_image, push_manifest
from tests.support.server import RunningRegistry


def namespace() -> str:
    return "imm" + uuid.uuid4().hex[:10]


def policy(registry: RunningRegistry, *args: str) -> subprocess.CompletedProcess[str]:
    """The admin command on the registry's own store while it serves."""
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "policy", "immutable", *args],
        env={**os.environ, **registry.env, "DOCKYARD_DATA_DIR": str(registry.data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def put(client: httpx.Client, repo: str, reference: str, body: bytes) -> httpx.Response:
    return client.put(
        f"/v2/{repo}/manifests/{reference}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )


def denied(response: httpx.Response, message: str) -> None:
    assert response.status_code == 403, response.text
    assert error_code(response) == "DENIED"
    assert response.json()["errors"][0]["message"] == message


def test_an_immutable_tag_neither_moves_nor_goes(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = namespace()
    repo = f"{ns}/app"
    first, body = push_image(client, repo, "v1.0")
    # Tags pushed before the rule are held too.
    assert policy(registry, "add", ns, "v*").returncode == 0
    assert push_manifest(client, repo, "v1.0", body) == first, "the same manifest again is fine"
    other = image_manifest(client, repo)
    denied(put(client, repo, "v1.0", other), f"tag v1.0 is immutable (rule `v*` on {ns})")
    resolved = client.head(f"/v2/{repo}/manifests/v1.0", headers={"Accept": OCI_MANIFEST})
    assert resolved.headers["Docker-Content-Digest"] == first
    denied(
        client.delete(f"/v2/{repo}/manifests/v1.0"), f"tag v1.0 is immutable (rule `v*` on {ns})"
    )
    denied(
        client.delete(f"/v2/{repo}/manifests/{first}"), f"tag v1.0 is immutable (rule `v*` on {ns})"
    )
    denied(
        client.delete(f"/v2/{repo}/manifests/{first}", params={"force": "true"}),
        f"tag v1.0 is immutable (rule `v*` on {ns})",
    )
    # Tags the rule does not catch move and go as ever.
    push_manifest(client, repo, "latest", body)
    second = push_manifest(client, repo, "latest", other)
    assert client.delete(f"/v2/{repo}/manifests/latest").status_code == 202
    assert client.delete(f"/v2/{repo}/manifests/{second}").status_code == 202
    # Removing the rule frees the tag.
    assert policy(registry, "remove", ns, "v*").returncode == 0
    assert push_manifest(client, repo, "v1.0", other) != first
    assert client.delete(f"/v2/{repo}/manifests/v1.0").status_code == 202


def test_a_repository_rule_holds_only_that_repository(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = namespace()
    assert policy(registry, "add", f"{ns}/app", "release-*").returncode == 0
    push_image(client, f"{ns}/app", "release-1")
    push_image(client, f"{ns}/web", "release-1")
    push_image(client, f"{ns}/web", "release-1")  # moves: not held there
    body = image_manifest(client, f"{ns}/app")
    denied(
        put(client, f"{ns}/app", "release-1", body),
        f"tag release-1 is immutable (rule `release-*` on {ns}/app)",
    )
    listed = policy(registry, "list", ns)
    assert listed.stdout.splitlines() == [f"{ns}/app\trelease-*"]


def test_signature_tags_move_under_a_catch_all_rule(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = namespace()
    repo = f"{ns}/app"
    subject, _ = push_image(client, repo, "v1")
    assert policy(registry, "add", ns, "*").returncode == 0
    sig_tag = subject.replace(":", "-") + ".sig"
    for _ in range(2):  # cosign re-signs: the .sig tag moves to a new manifest
        push_image(client, repo, sig_tag)
    push_image(client, repo, subject.replace(":", "-"))
    push_image(client, repo, subject.replace(":", "-"))
    assert client.delete(f"/v2/{repo}/manifests/{sig_tag}").status_code == 202
    assert policy(registry, "add", ns, "sha256-*.sig").returncode == 0
    push_image(client, repo, sig_tag)
    denied(
        put(client, repo, sig_tag, image_manifest(client, repo)),
        f"tag {sig_tag} is immutable (rule `sha256-*.sig` on {ns})",
    )


def test_concurrent_pushes_to_a_new_immutable_tag_one_wins(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = namespace()
    repo = f"{ns}/race"
    assert policy(registry, "add", ns, "v*").returncode == 0
    bodies = [image_manifest(client, repo) for _ in range(8)]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda b: put(client, repo, "v1", b), bodies))
    won = [b for b, r in zip(bodies, answers, strict=True) if r.status_code == 201]
    assert len(won) == 1, [r.status_code for r in answers]
    for response in answers:
        if response.status_code != 201:
            denied(response, f"tag v1 is immutable (rule `v*` on {ns})")
    got = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert got.content == won[0]


def test_crane_copy_over_an_immutable_tag_is_refused_naming_the_rule(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = namespace()
    repo = f"{ns}/app"
    push_image(client, repo, "v1")
    push_image(client, repo, "candidate")
    assert policy(registry, "add", ns, "v*").returncode == 0
    result = run_peer(
        [
            require("crane"),
            "copy",
            "--insecure",
            f"{registry.host}/{repo}:candidate",
            f"{registry.host}/{repo}:v1",
        ],
        check=False,
        timeout=120,
    )
    assert result.returncode != 0
    assert f"tag v1 is immutable (rule `v*` on {ns})" in result.stderr, result.stderr
