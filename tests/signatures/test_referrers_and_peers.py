"""Signatures as OCI 1.1 referrers, seen by crane and regctl; concurrent signers; indexes;
CNCF Distribution (no referrers API) as the registry."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest

from dockyard.client.api import Client
from dockyard.core import cosign, keys
from tests.signatures.helpers import PASSWORD, dockyard, get_manifest, key_pair, push_image
from tests.support.images import write_oci_index
from tests.support.peers import Distribution, require
from tests.support.server import RunningRegistry

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def _sig_tag(digest: str) -> str:
    return "sha256-" + digest.split(":")[1] + ".sig"


def _peer(name: str, *args: str, home: Path) -> str:
    result = subprocess.run(
        [require(name), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HOME": str(home)},
        timeout=120,
    )
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


def test_referrer_signature_is_found_by_the_api_crane_and_regctl(
    home: Path, start_registry
) -> None:
    server: RunningRegistry = start_registry()
    host, repo = server.host, "sigs/referrers"
    digest = push_image(home, host, repo)
    private, public = key_pair(home, "alice")
    signed = json.loads(
        dockyard(
            "sign", "--key", str(private), "--referrers", f"{host}/{repo}:1.0", "--json", home=home
        ).stdout
    )
    referrer = signed["referrer"]
    assert signed["digest"] == digest and referrer.startswith("sha256:")

    with httpx.Client(base_url=server.url) as http:
        listed = http.get(f"/v2/{repo}/referrers/{digest}").json()["manifests"]
    assert [(m["digest"], m["artifactType"]) for m in listed] == [(referrer, SIMPLESIGNING)]
    body, _ = get_manifest(server.url, repo, referrer)
    manifest = json.loads(body)
    assert manifest["artifactType"] == SIMPLESIGNING
    assert manifest["subject"]["digest"] == digest
    assert manifest["config"]["size"] == 233
    [layer] = manifest["layers"]
    # The same signature as in the .sig tag: one signature, stored both ways.
    tagged, _ = get_manifest(server.url, repo, _sig_tag(digest))
    assert json.loads(tagged)["layers"] == [layer]

    # crane lists the .sig tag and reads the same bytes; regctl lists the referrer.
    tags = _peer("crane", "ls", "--insecure", f"{host}/{repo}", home=home).split()
    assert sorted(tags) == sorted(["1.0", _sig_tag(digest)])
    crane_manifest = _peer(
        "crane", "manifest", "--insecure", f"{host}/{repo}:{_sig_tag(digest)}", home=home
    )
    assert crane_manifest.encode() == tagged
    regctl_listed = json.loads(
        _peer(
            "regctl",
            "--host",
            f"reg={host},tls=disabled",
            "artifact",
            "list",
            f"{host}/{repo}:1.0",
            "--format",
            "{{json .Descriptors}}",
            home=home,
        )
    )
    assert [(d["digest"], d["artifactType"]) for d in regctl_listed] == [(referrer, SIMPLESIGNING)]

    # With the .sig tag gone, the referrer alone still verifies.
    dockyard("delete", "--tag-only", f"{host}/{repo}:{_sig_tag(digest)}", home=home)
    result = dockyard("verify", "--key", str(public), f"{host}/{repo}:1.0", home=home)
    assert f"signed by {public}" in result.stdout
    assert f"referrer {referrer}" in result.stdout


def test_concurrent_signers_all_verify(home: Path, start_registry) -> None:
    server: RunningRegistry = start_registry()
    host, repo = server.host, "sigs/concurrent"
    digest = push_image(home, host, repo)
    signers = [keys.generate_private_key() for _ in range(4)]

    async def sign_all() -> None:
        async def one(private: keys.PrivateKey) -> None:
            async with Client() as client:
                await client.sign(f"{host}/{repo}:1.0", private, referrer=True)

        await asyncio.gather(*(one(private) for private in signers))

    asyncio.run(sign_all())

    async def verify_each() -> list[bool]:
        async with Client() as client:
            results = []
            for private in signers:
                public = keys.load_public_key(keys.public_key_pem(private))
                found = await client.verify(f"{host}/{repo}:1.0", [("k", public)])
                results.append(found.valid)
            return results

    assert asyncio.run(verify_each()) == [True] * len(signers)
    with httpx.Client(base_url=server.url) as http:
        listed = http.get(f"/v2/{repo}/referrers/{digest}").json()["manifests"]
    assert len(listed) == len(signers)
    tagged, _ = get_manifest(server.url, repo, _sig_tag(digest))
    layers = json.loads(tagged)["layers"]
    # However the writes interleaved, the tag holds no signature twice.
    signatures = [layer["annotations"][cosign.SIGNATURE_ANNOTATION] for layer in layers]
    assert len(signatures) == len(set(signatures)) >= 1


def test_all_platforms_needs_every_image_of_an_index_signed(home: Path, start_registry) -> None:
    server: RunningRegistry = start_registry()
    host, repo = server.host, "sigs/multi"
    layout = home / "index-layout"
    built = write_oci_index(layout, "1.0", seed="multi", layers=1)
    dockyard("push", f"oci:{layout}:1.0", f"{host}/{repo}:1.0", "--quiet", home=home)
    private, public = key_pair(home, "alice")
    dockyard("sign", "--key", str(private), f"{host}/{repo}:1.0", home=home)

    index_only = dockyard("verify", "--key", str(public), f"{host}/{repo}:1.0", home=home)
    assert f"Verified {host}/{repo}@{built.index_digest}" in index_only.stdout
    every = dockyard(
        "verify",
        "--key",
        str(public),
        "--all-platforms",
        f"{host}/{repo}:1.0",
        home=home,
        check=False,
    )
    assert every.returncode == 1
    for child in built.children:
        assert f"{host}/{repo}@{child.manifest_digest} (linux/" in every.stderr
    assert every.stderr.count("no signatures found") == len(built.children)

    # One child signed by digest; --all-platforms signs the index and every child.
    first = built.children[0].manifest_digest
    dockyard("sign", "--key", str(private), f"{host}/{repo}@{first}", home=home)
    still = dockyard(
        "verify", "--key", str(public), "--all-platforms", f"{host}/{repo}:1.0",
        home=home, check=False,
    )  # fmt: skip
    assert still.returncode == 1
    assert still.stderr.count("no signatures found") == len(built.children) - 1
    every_signed = json.loads(
        dockyard(
            "sign", "--key", str(private), "--all-platforms", f"{host}/{repo}:1.0", "--json",
            home=home,
        ).stdout
    )  # fmt: skip
    assert [item["digest"] for item in every_signed["signed"]] == [built.index_digest] + [
        child.manifest_digest for child in built.children
    ]
    signed = dockyard(
        "verify", "--key", str(public), "--all-platforms", f"{host}/{repo}:1.0", home=home
    )
    assert signed.stdout.count("Verified") == 1 + len(built.children)


def test_on_distribution_without_referrers_api(home: Path, tmp_path: Path) -> None:
    with Distribution(root=tmp_path / "distribution") as server:
        host, repo = server.host, "sigs/distribution"
        digest = push_image(home, host, repo)
        private, public = key_pair(home, "alice")
        signed = json.loads(
            dockyard(
                "sign",
                "--key",
                str(private),
                "--referrers",
                f"{host}/{repo}:1.0",
                "--json",
                home=home,
            ).stdout
        )
        # No referrers API: the referrer is listed in the referrers tag instead.
        with httpx.Client(base_url=server.url) as http:
            index = http.get(
                f"/v2/{repo}/manifests/sha256-{digest.split(':')[1]}",
                headers={"Accept": "application/vnd.oci.image.index.v1+json"},
            ).json()
        assert [(m["digest"], m["artifactType"]) for m in index["manifests"]] == [
            (signed["referrer"], SIMPLESIGNING)
        ]
        result = dockyard("verify", "--key", str(public), f"{host}/{repo}:1.0", home=home)
        assert f"signed by {public}" in result.stdout

        # Another image signed while its referrers tag holds something that is no index: the
        # listing fails, the .sig tag still verifies.
        other = push_image(home, host, repo, tag="2.0")
        dockyard(
            "copy", f"{host}/{repo}:1.0", f"{host}/{repo}:sha256-{other.split(':')[1]}", home=home
        )
        dockyard("sign", "--key", str(private), f"{host}/{repo}:2.0", home=home)
        odd = dockyard("verify", "--key", str(public), f"{host}/{repo}:2.0", home=home)
        assert f"signed by {public}" in odd.stdout
        assert "the referrers of the image" in odd.stdout and "not an OCI index" in odd.stdout


def test_key_generate_then_sign_and_verify(home: Path, start_registry) -> None:
    server: RunningRegistry = start_registry()
    host, repo = server.host, "sigs/generated"
    push_image(home, host, repo)
    made = dockyard("key", "generate", "--output", "release", home=home)
    private, public = home / "release.key", home / "release.pub"
    assert private.stat().st_mode & 0o777 == 0o600
    assert PASSWORD not in made.stdout + made.stderr
    assert private.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert keys.describe(keys.load_public_key(public.read_bytes())) == "ECDSA P-256"
    assert PASSWORD.encode() not in private.read_bytes()

    # Never overwritten.
    before = private.read_bytes()
    again = dockyard("key", "generate", "--output", "release", home=home, check=False)
    assert again.returncode == 2 and "release.key exists" in again.stderr
    assert private.read_bytes() == before

    # A prompt (here stdin) asked twice: two different answers write nothing.
    differ = dockyard(
        "key",
        "generate",
        "--output",
        "other",
        home=home,
        check=False,
        input="first-password\nsecond-password\n",
        env={"DOCKYARD_KEY_PASSWORD": None},
    )
    assert differ.returncode == 2 and "differ" in differ.stderr
    assert not (home / "other.key").exists()
    prompted = dockyard(
        "key",
        "generate",
        "--output",
        "other",
        home=home,
        input="same-password\nsame-password\n",
        env={"DOCKYARD_KEY_PASSWORD": None},
    )
    assert "same-password" not in prompted.stdout + prompted.stderr
    assert keys.load_private_key((home / "other.key").read_bytes(), b"same-password")
    empty = dockyard(
        "key",
        "generate",
        "--output",
        "empty",
        home=home,
        check=False,
        env={"DOCKYARD_KEY_PASSWORD": ""},
    )
    assert empty.returncode == 2 and "empty" in empty.stderr

    wrong = dockyard(
        "sign",
        "--key",
        str(private),
        f"{host}/{repo}:1.0",
        home=home,
        check=False,
        env={"DOCKYARD_KEY_PASSWORD": "not-the-password"},
    )
    assert wrong.returncode == 2 and "password is wrong" in wrong.stderr
    dockyard("sign", "--key", str(private), f"{host}/{repo}:1.0", home=home)
    result = dockyard("verify", "--key", str(public), f"{host}/{repo}:1.0", home=home)
    assert f"signed by {public}" in result.stdout

    # cosign's own key format is named, not misread; a private key is not a public key.
    cosign_key = home / "cosign.key"
    cosign_key.write_text(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnt9fQ==\n"
        "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
    )
    refused = dockyard(
        "sign", "--key", str(cosign_key), f"{host}/{repo}:1.0", home=home, check=False
    )
    assert refused.returncode == 2 and "cosign's own key format" in refused.stderr
    swapped = dockyard(
        "verify", "--key", str(private), f"{host}/{repo}:1.0", home=home, check=False
    )
    assert swapped.returncode == 2 and "not a PEM public key" in swapped.stderr
    missing = dockyard(
        "verify", "--key", str(public), f"{host}/{repo}:nope", home=home, check=False
    )
    assert missing.returncode == 3
