"""Issue 18, the server side: a signature policy (set by `dockyard policy signed` on the data
folder of the running registry) keeps unsigned manifests from being served, on each backend
pair; signatures by another key, for another digest, moved from another repository or over a
tampered payload do not open it; `warn` serves with a Warning header."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from dockyard.core import cosign, keys
from tests.signatures.helpers import (
    PASSWORD,
    dockyard,
    get_blob,
    get_manifest,
    key_pair,
    push_image,
    push_signature_image,
)
from tests.support.images import write_oci_index
from tests.support.server import RunningRegistry


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def namespace() -> str:
    return "signed" + uuid.uuid4().hex[:10]


def policy(registry: RunningRegistry, *args: str) -> subprocess.CompletedProcess[str]:
    """`dockyard policy signed …` on the registry's own store while it serves."""
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "policy", "signed", *args],
        env={**os.environ, **registry.env, "DOCKYARD_DATA_DIR": str(registry.data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def sig_tag(digest: str) -> str:
    return "sha256-" + digest.split(":")[1] + ".sig"


def refused(url: str, repo: str, reference: str, digest: str, scope: str) -> None:
    _, response = get_manifest(url, repo, reference)
    assert response.status_code == 403, response.text
    error = response.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert error["message"] == (
        f"{repo}@{digest} has no valid signature required by the signature policy on {scope}"
    )


def served(url: str, repo: str, reference: str) -> httpx.Response:
    _, response = get_manifest(url, repo, reference)
    assert response.status_code == 200, response.text
    assert "warning" not in response.headers
    return response


def test_only_signed_manifests_are_served_under_enforce(
    home: Path, registry_on_every_backend: RunningRegistry
) -> None:
    server = registry_on_every_backend
    ns = namespace()
    host, repo, other_repo = server.host, f"{ns}/app", f"{ns}/other"
    digest = push_image(home, host, repo)
    alice_key, alice_pub = key_pair(home, "alice")
    bob_key, _ = key_pair(home, "bob")

    set_ = policy(server, ns, "--key", str(alice_pub))
    assert set_.returncode == 0, set_.stderr
    assert f"signature policy set: {ns}\tenforce\t1 key, 0 roots" in set_.stdout
    # Stored, not served: by tag and by digest. HEAD (no content) still names the digest.
    refused(server.url, repo, "1.0", digest, ns)
    refused(server.url, repo, digest, digest, ns)
    with httpx.Client(base_url=server.url) as http:
        head = http.head(f"/v2/{repo}/manifests/1.0")
    assert head.status_code == 200 and head.headers["docker-content-digest"] == digest
    # The manifest's bytes through the blobs endpoint meet the same policy.
    with httpx.Client(base_url=server.url, follow_redirects=True) as http:
        as_blob = http.get(f"/v2/{repo}/blobs/{digest}")
    assert as_blob.status_code == 403 and as_blob.json()["errors"][0]["code"] == "DENIED"

    # Another key's signature: refused; the signature itself is served.
    dockyard("sign", "--key", str(bob_key), f"{host}/{repo}@{digest}", home=home)
    refused(server.url, repo, "1.0", digest, ns)
    signatures = served(server.url, repo, sig_tag(digest))
    signature_manifest = json.loads(signatures.content)
    assert cosign.signature_layers(signature_manifest)
    # ... by its digest too.
    served(server.url, repo, signatures.headers["docker-content-digest"])

    # Alice's signature of another digest, in the same repository: refused.
    other_digest = push_image(home, host, repo, tag="2.0")
    dockyard("sign", "--key", str(alice_key), f"{host}/{repo}@{other_digest}", home=home)
    served(server.url, repo, "2.0")
    refused(server.url, repo, "1.0", digest, ns)

    # Alice's signature of the same image made in another repository, copied here: refused.
    assert push_image(home, host, other_repo, seed=f"{repo}:1.0") == digest
    dockyard("sign", "--key", str(alice_key), f"{host}/{other_repo}@{digest}", home=home)
    moved = json.loads(get_manifest(server.url, other_repo, sig_tag(digest))[0])["layers"][0]
    moved_payload = get_blob(server.url, other_repo, moved["digest"])
    push_signature_image(server.url, repo, digest, moved_payload, moved["annotations"])
    refused(server.url, repo, "1.0", digest, ns)
    served(server.url, other_repo, "1.0")

    # A tampered payload under alice's real signature annotation: refused.
    private = keys.load_private_key(alice_key.read_bytes(), PASSWORD.encode())
    genuine = cosign.payload(f"{host}/{repo}", digest)
    tampered = genuine.replace(b'"optional":null', b'"optional":{"x":"y"}')
    signature = base64.b64encode(keys.sign(private, genuine)).decode()
    push_signature_image(
        server.url, repo, digest, tampered, {cosign.SIGNATURE_ANNOTATION: signature}
    )
    refused(server.url, repo, "1.0", digest, ns)

    # Alice signs it: served at once, by tag and by digest, and verifiable.
    dockyard("sign", "--key", str(alice_key), f"{host}/{repo}:1.0", home=home)
    served(server.url, repo, "1.0")
    served(server.url, repo, digest)
    assert get_blob(server.url, repo, digest) == get_manifest(server.url, repo, digest)[0]
    dockyard("verify", "--key", str(alice_pub), f"{host}/{repo}:1.0", home=home)

    listed = policy(server, "list", ns)
    assert listed.returncode == 0 and listed.stdout.startswith(f"{ns}\tenforce\t1 key")
    assert policy(server, "remove", ns).returncode == 0
    assert push_image(home, host, repo, tag="3.0", seed="unsigned") != digest
    served(server.url, repo, "3.0")
    gone = policy(server, "remove", ns)
    assert gone.returncode == 2 and f"no signature policy on {ns}" in gone.stderr


def test_warn_serves_with_a_warning_and_the_repository_policy_wins(
    home: Path, registry_on_every_backend: RunningRegistry
) -> None:
    server = registry_on_every_backend
    ns = namespace()
    host, repo, loose = server.host, f"{ns}/app", f"{ns}/loose"
    digest = push_image(home, host, repo)
    push_image(home, host, loose)
    _, alice_pub = key_pair(home, "alice")
    assert policy(server, ns, "--key", str(alice_pub)).returncode == 0
    assert policy(server, repo, "--key", str(alice_pub), "--mode", "warn").returncode == 0
    _, response = get_manifest(server.url, repo, "1.0")
    assert response.status_code == 200
    assert response.headers["warning"] == (
        f'299 - "{repo}@{digest} has no valid signature required by the signature policy on {repo}"'
    )
    refused(server.url, loose, "1.0", push_image(home, host, loose), ns)
    assert policy(server, loose, "--key", str(alice_pub), "--mode", "off").returncode == 0
    served(server.url, loose, "1.0")
    listed = policy(server, "list", ns).stdout.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        [ns, "enforce"],
        [repo, "warn"],
        [loose, "off"],
    ]
    # Setting a policy replaces it: a new version each time.
    versions = {policy(server, repo, "--key", str(alice_pub)).stdout.split()[-1] for _ in "ab"}
    assert len(versions) == 2


def test_a_policy_key_must_be_a_key(home: Path, registry_on_every_backend: RunningRegistry) -> None:
    server = registry_on_every_backend
    ns = namespace()
    _, alice_pub = key_pair(home, "alice")
    not_a_key = home / "note.txt"
    not_a_key.write_text("hello, I am not a key\n")
    bad = policy(server, ns, "--key", str(alice_pub), "--key", str(not_a_key))
    assert bad.returncode == 2
    assert "key 2 is not a public key: not a PEM public key" in bad.stderr
    private_as_public = policy(server, ns, "--key", str(home / "alice.key"))
    assert private_as_public.returncode == 2
    assert "key 1 is not a public key" in private_as_public.stderr
    wrong_mode = policy(server, ns, "--key", str(alice_pub), "--mode", "strict")
    assert wrong_mode.returncode == 2 and "is not one of enforce, warn, off" in wrong_mode.stderr
    nothing = policy(server, ns)
    assert nothing.returncode == 2 and "at least one --key or a --trust-store" in nothing.stderr
    assert policy(server, "list", ns).stdout == f"no signature policy on {ns}\n"


def test_children_of_a_signed_index_are_served_an_unsigned_index_is_not(
    home: Path, registry_on_every_backend: RunningRegistry
) -> None:
    server = registry_on_every_backend
    ns = namespace()
    host, repo = server.host, f"{ns}/multi"
    alice_key, alice_pub = key_pair(home, "alice")
    signed_index = write_oci_index(home / "signed", "1.0", seed=f"{ns}-signed", layers=1)
    dockyard("push", f"oci:{home / 'signed'}:1.0", f"{host}/{repo}:1.0", "--quiet", home=home)
    loose_index = write_oci_index(home / "loose", "2.0", seed=f"{ns}-loose", layers=1)
    dockyard("push", f"oci:{home / 'loose'}:2.0", f"{host}/{repo}:2.0", "--quiet", home=home)
    assert policy(server, ns, "--key", str(alice_pub)).returncode == 0
    for child in signed_index.children:
        refused(server.url, repo, child.manifest_digest, child.manifest_digest, ns)

    # The index alone is signed: it and its children are served.
    dockyard("sign", "--key", str(alice_key), f"{host}/{repo}:1.0", home=home)
    served(server.url, repo, "1.0")
    for child in signed_index.children:
        served(server.url, repo, child.manifest_digest)

    # Every child of the other index signed, the index not: the children only.
    for child in loose_index.children:
        dockyard(
            "sign", "--key", str(alice_key), f"{host}/{repo}@{child.manifest_digest}", home=home
        )
        served(server.url, repo, child.manifest_digest)
    refused(server.url, repo, "2.0", loose_index.index_digest, ns)


def test_pulls_while_policies_change_and_signatures_arrive(home: Path, start_registry) -> None:
    """Two workers, pulls from eight threads while the policy is set, replaced and removed and
    the image is signed: every answer is the image or DENIED, never an error; at the end every
    pull is served."""
    from concurrent.futures import ThreadPoolExecutor

    server = start_registry("--workers", "2")
    ns = namespace()
    repo = f"{ns}/busy"
    digest = push_image(home, server.host, repo)
    alice_key, alice_pub = key_pair(home, "alice")
    _, bob_pub = key_pair(home, "bob")
    statuses: list[int] = []

    def pull(_: int) -> int:
        return get_manifest(server.url, repo, digest)[1].status_code

    with ThreadPoolExecutor(8) as pool:
        pulling = [pool.submit(lambda: list(map(pull, range(25)))) for _ in range(8)]
        for args in (
            (ns, "--key", str(bob_pub)),
            (repo, "--key", str(alice_pub), "--mode", "warn"),
            (repo, "--key", str(alice_pub)),
            ("remove", repo),
        ):
            assert policy(server, *args).returncode == 0
        dockyard("sign", "--key", str(alice_key), f"{server.host}/{repo}@{digest}", home=home)
        assert policy(server, ns, "--key", str(alice_pub), "--key", str(bob_pub)).returncode == 0
        for future in pulling:
            statuses += future.result()
    assert set(statuses) <= {200, 403}, sorted(set(statuses))
    assert [pull(i) for i in range(10)] == [200] * 10


def test_a_referrer_signature_alone_opens_the_image(home: Path, registry: RunningRegistry) -> None:
    ns = namespace()
    host, repo = registry.host, f"{ns}/app"
    digest = push_image(home, host, repo)
    alice_key, alice_pub = key_pair(home, "alice")
    assert policy(registry, ns, "--key", str(alice_pub)).returncode == 0
    dockyard("sign", "--referrers", "--key", str(alice_key), f"{host}/{repo}@{digest}", home=home)
    # Only the OCI 1.1 referrer is left: the .sig tag goes.
    dockyard("delete", "--tag-only", f"{host}/{repo}:{sig_tag(digest)}", home=home)
    assert get_manifest(registry.url, repo, sig_tag(digest))[1].status_code == 404
    served(registry.url, repo, "1.0")
    with httpx.Client(base_url=registry.url) as http:
        listed = http.get(f"/v2/{repo}/referrers/{digest}").json()["manifests"]
    [referrer] = listed
    assert referrer["artifactType"] == cosign.SIMPLESIGNING
    served(registry.url, repo, referrer["digest"])  # the signature itself, by digest
