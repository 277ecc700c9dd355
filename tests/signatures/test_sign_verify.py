"""Issue 18, cosign's key-based signatures: `dockyard sign` and `dockyard verify` on a real
`dockyard serve` (filesystem+SQLite and S3+PostgreSQL): round trip, several signers, every
tamper refused with its own message, and signatures shaped field by field as cosign's."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from dockyard.core import cosign, keys
from tests.signatures.helpers import (
    dockyard,
    get_blob,
    get_manifest,
    key_pair,
    push_image,
    push_signature_image,
)
from tests.support.server import RunningRegistry

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def _sig_tag(digest: str) -> str:
    return "sha256-" + digest.split(":")[1] + ".sig"


def test_sign_by_tag_then_verify_round_trip(
    home: Path, registry_on_every_backend: RunningRegistry
) -> None:
    server = registry_on_every_backend
    host, repo = server.host, "sigs/round-trip"
    digest = push_image(home, host, repo)
    private, public = key_pair(home, "alice")

    signed = dockyard("sign", "--key", str(private), f"{host}/{repo}:1.0", home=home)
    # Signing by tag signs the digest, and says so.
    assert f"{host}/{repo}:1.0 is {digest}; signing the digest, not the tag" in signed.stdout
    assert f"Signed {host}/{repo}@{digest}" in signed.stdout
    assert _sig_tag(digest) in signed.stdout
    assert "key-password" not in signed.stdout + signed.stderr

    by_tag = dockyard("verify", "--key", str(public), f"{host}/{repo}:1.0", home=home)
    assert f"Verified {host}/{repo}@{digest}: signed by {public}" in by_tag.stdout
    by_digest = dockyard("verify", "--key", str(public), f"{host}/{repo}@{digest}", home=home)
    assert by_digest.returncode == 0

    # The tag now names another image: its signature does not carry over.
    push_image(home, host, repo, seed="a newer build")
    moved_tag = dockyard(
        "verify", "--key", str(public), f"{host}/{repo}:1.0", home=home, check=False
    )
    assert moved_tag.returncode == 1
    assert "no signatures found" in moved_tag.stderr


def test_signature_has_cosigns_structure_field_by_field(
    home: Path, registry_on_every_backend: RunningRegistry
) -> None:
    server = registry_on_every_backend
    host, repo = server.host, "sigs/structure"
    digest = push_image(home, host, repo)
    private, public = key_pair(home, "alice")
    dockyard("sign", "--key", str(private), f"{host}/{repo}@{digest}", home=home)

    body, response = get_manifest(server.url, repo, _sig_tag(digest))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.oci.image.manifest.v1+json"
    manifest = json.loads(body)
    assert list(manifest) == ["schemaVersion", "mediaType", "config", "layers"]
    assert manifest["schemaVersion"] == 2
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert manifest["config"]["size"] == 233
    [layer] = manifest["layers"]
    assert list(layer) == ["mediaType", "size", "digest", "annotations"]
    assert layer["mediaType"] == SIMPLESIGNING
    assert list(layer["annotations"]) == ["dev.cosignproject.cosign/signature"]

    payload = get_blob(server.url, repo, layer["digest"])
    assert layer["size"] == len(payload)
    assert json.loads(payload) == {
        "critical": {
            "identity": {"docker-reference": f"{host}/{repo}"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    # Compact, in cosign's key order: the same bytes cosign would have signed.
    assert payload == cosign.payload(f"{host}/{repo}", digest)

    config = get_blob(server.url, repo, manifest["config"]["digest"])
    assert len(config) == 233
    document = json.loads(config)
    assert document == {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]},
        "config": {},
    }
    # The shape of the vector cosign signed (its layer is 261 bytes, digest sha256:cf482371…).
    vector = Path(__file__).parents[1] / "data" / "signatures" / "cosign-simplesigning-key"
    vector_payload = (vector / "payload.json").read_bytes()
    assert sorted(json.loads(vector_payload)) == sorted(json.loads(payload))
    assert sorted(json.loads(vector_payload)["critical"]) == sorted(json.loads(payload)["critical"])
    signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    assert keys.verify(keys.load_public_key(public.read_bytes()), signature, payload)
    # DER ECDSA: a SEQUENCE of two INTEGERs, as in cosign's P-256 signatures.
    assert signature[0] == 0x30


def test_two_signers_append_and_each_key_verifies_alone(
    home: Path, registry_on_every_backend: RunningRegistry
) -> None:
    server = registry_on_every_backend
    host, repo = server.host, "sigs/two-signers"
    digest = push_image(home, host, repo)
    alice_key, alice_pub = key_pair(home, "alice")
    bob_key, bob_pub = key_pair(home, "bob")
    _, carol_pub = key_pair(home, "carol")

    dockyard("sign", "--key", str(alice_key), f"{host}/{repo}:1.0", home=home)
    first, _ = get_manifest(server.url, repo, _sig_tag(digest))
    dockyard("sign", "--key", str(bob_key), f"{host}/{repo}:1.0", home=home)
    second, _ = get_manifest(server.url, repo, _sig_tag(digest))
    # Appended, never replaced: Alice's layer is still the first, unchanged.
    layers = json.loads(second)["layers"]
    assert len(layers) == 2
    assert layers[0] == json.loads(first)["layers"][0]
    config = json.loads(get_blob(server.url, repo, json.loads(second)["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in layers]
    assert len(config["history"]) == 2

    for public in (alice_pub, bob_pub):
        result = dockyard("verify", "--key", str(public), f"{host}/{repo}:1.0", home=home)
        assert f"signed by {public}" in result.stdout
    both = dockyard(
        "verify", "--key", str(alice_pub), "--key", str(bob_pub), f"{host}/{repo}:1.0", home=home
    )
    assert f"signed by {alice_pub}, {bob_pub}" in both.stdout

    wrong = dockyard(
        "verify", "--key", str(carol_pub), f"{host}/{repo}:1.0", home=home, check=False
    )
    assert wrong.returncode == 1
    assert "no valid signature by the given keys" in wrong.stderr
    assert wrong.stderr.count("signature invalid: no given key verifies it") == 2


def test_a_signature_moved_to_another_repository_is_refused(
    home: Path, registry_on_every_backend: RunningRegistry
) -> None:
    server = registry_on_every_backend
    host = server.host
    digest = push_image(home, host, "sigs/origin")
    private, public = key_pair(home, "alice")
    dockyard("sign", "--key", str(private), f"{host}/sigs/origin:1.0", home=home)
    # The image and its signature image, copied as they are into another repository.
    dockyard("copy", f"{host}/sigs/origin:1.0", f"{host}/sigs/elsewhere:1.0", home=home)
    tag = _sig_tag(digest)
    dockyard("copy", f"{host}/sigs/origin:{tag}", f"{host}/sigs/elsewhere:{tag}", home=home)

    moved = dockyard(
        "verify", "--key", str(public), f"{host}/sigs/elsewhere:1.0", home=home, check=False
    )
    assert moved.returncode == 1
    assert f"payload for another repository: it names {host}/sigs/origin" in moved.stderr, (
        moved.stderr
    )
    # Whoever knows where it was signed can say so.
    accepted = dockyard(
        "verify",
        "--key",
        str(public),
        "--identity",
        f"{host}/sigs/origin",
        f"{host}/sigs/elsewhere:1.0",
        home=home,
    )
    assert f"signed by {public}" in accepted.stdout


def test_a_signature_over_another_digest_is_refused(
    home: Path, registry_on_every_backend: RunningRegistry
) -> None:
    server = registry_on_every_backend
    host, repo = server.host, "sigs/other-digest"
    signed_digest = push_image(home, host, repo, tag="signed")
    other_digest = push_image(home, host, repo, tag="unsigned")
    private, public = key_pair(home, "alice")
    dockyard("sign", "--key", str(private), f"{host}/{repo}:signed", home=home)
    # The signed image's signatures put under the other image's signature tag.
    dockyard(
        "copy",
        f"{host}/{repo}:{_sig_tag(signed_digest)}",
        f"{host}/{repo}:{_sig_tag(other_digest)}",
        home=home,
    )
    result = dockyard(
        "verify", "--key", str(public), f"{host}/{repo}:unsigned", home=home, check=False
    )
    assert result.returncode == 1
    assert f"payload for another digest: it names {signed_digest}" in result.stderr


def test_a_changed_payload_and_a_missing_signature_are_refused(
    home: Path, registry_on_every_backend: RunningRegistry
) -> None:
    server = registry_on_every_backend
    host, repo = server.host, "sigs/tampered"
    digest = push_image(home, host, repo)
    private_path, public = key_pair(home, "alice")
    private = keys.load_private_key(private_path.read_bytes(), b"key-password-1")
    payload = cosign.payload(f"{host}/{repo}", digest)
    signature = base64.b64encode(keys.sign(private, payload)).decode()
    # The payload edited after signing (one more space): same meaning, other bytes.
    edited = payload.replace(b'"optional":null', b'"optional": null')
    push_signature_image(server.url, repo, digest, edited, {cosign.SIGNATURE_ANNOTATION: signature})
    result = dockyard("verify", "--key", str(public), f"{host}/{repo}:1.0", home=home, check=False)
    assert result.returncode == 1
    assert "signature invalid: no given key verifies it over the payload" in result.stderr

    push_signature_image(server.url, repo, digest, payload, {})
    unsigned = dockyard(
        "verify", "--key", str(public), f"{host}/{repo}:1.0", home=home, check=False
    )
    assert unsigned.returncode == 1
    assert "no dev.cosignproject.cosign/signature annotation" in unsigned.stderr

    # The original bytes with their signature pass: what failed above was the tampering.
    push_signature_image(
        server.url, repo, digest, payload, {cosign.SIGNATURE_ANNOTATION: signature}
    )
    ok = dockyard("verify", "--key", str(public), f"{host}/{repo}:1.0", "--json", home=home)
    report = json.loads(ok.stdout)
    assert report["verified"] is True
    assert report["images"][0]["keys"] == [str(public)]


def test_hostile_signature_images_are_refused_not_followed(
    home: Path, registry_on_every_backend: RunningRegistry
) -> None:
    server = registry_on_every_backend
    host, repo = server.host, "sigs/hostile"
    digest = push_image(home, host, repo)
    private, public = key_pair(home, "alice")
    # A "payload" far larger than any payload: not downloaded, refused.
    huge = b"{" + b" " * 70_000 + b"}"
    push_signature_image(server.url, repo, digest, huge, {cosign.SIGNATURE_ANNOTATION: "AAAA"})
    big = dockyard("verify", "--key", str(public), f"{host}/{repo}:1.0", home=home, check=False)
    assert big.returncode == 1 and "is not that of a payload" in big.stderr
    # A signer's text with terminal escapes is shown defanged.
    signer = keys.load_private_key(private.read_bytes(), b"key-password-1")
    escape = cosign.payload("\x1b[31mevil/\x1b[0m", digest)
    push_signature_image(
        server.url,
        repo,
        digest,
        escape,
        {cosign.SIGNATURE_ANNOTATION: base64.b64encode(keys.sign(signer, escape)).decode()},
    )
    shown = dockyard("verify", "--key", str(public), f"{host}/{repo}:1.0", home=home, check=False)
    assert shown.returncode == 1 and "payload for another repository" in shown.stderr
    assert "\x1b" not in shown.stderr

    # The .sig tag holding an index: verify says so, sign refuses to replace it.
    tag = _sig_tag(digest)
    dockyard("manifest", "create", f"{host}/{repo}:{tag}", f"{host}/{repo}:1.0", home=home)
    before, _ = get_manifest(server.url, repo, tag)
    odd = dockyard("verify", "--key", str(public), f"{host}/{repo}:1.0", home=home, check=False)
    assert odd.returncode == 1 and "holds no simple-signing layer" in odd.stderr
    refused = dockyard("sign", "--key", str(private), f"{host}/{repo}:1.0", home=home, check=False)
    assert refused.returncode == 1 and "is not a signature image" in refused.stderr
    after, _ = get_manifest(server.url, repo, tag)
    assert after == before
