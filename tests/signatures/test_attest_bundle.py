"""Issue 18, keyless attestations in the sigstore bundle v0.3 format: `dockyard
verify-attestation --trusted-root … --certificate-identity … --certificate-oidc-issuer …`
finds an image's bundle referrers on a real registry and checks them offline.

cosign's vector bundle attests to an image that is not in the test data, so attached to an
image pushed here it must be refused as a statement about another digest: that it gets that
far (past the Fulcio chain, the DSSE signature, the identity, the Rekor SET, inclusion proof
and checkpoint) is what shows the registry path works; a wrong identity stops it earlier."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest

from tests.signatures.helpers import dockyard, get_manifest, key_pair, push_image
from tests.support.push import unique_repo
from tests.support.server import RunningRegistry

VECTORS = Path(__file__).parents[1] / "data" / "signatures"
BUNDLE = VECTORS / "cosign-bundle-v0.3-dsse-attestation-keyless" / "oci-attestation.sigstore.json"
TRUSTED_ROOT = VECTORS / "sigstore-public-good-trusted-root" / "trusted_root.json"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY = "application/vnd.oci.empty.v1+json"
IDENTITY = "cody@soyland.com"
ISSUER = "https://github.com/login/oauth"
VECTOR_SUBJECT = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _attach_bundle(url: str, repo: str, digest: str, bundle: bytes) -> str:
    """The bundle as cosign's new bundle format stores it: a referrer manifest of artifact type
    bundle v0.3, the empty config, the bundle its one layer."""
    body, response = get_manifest(url, repo, digest)
    subject = {
        "mediaType": response.headers["content-type"],
        "digest": digest,
        "size": len(body),
    }
    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": BUNDLE_TYPE,
        "config": {"mediaType": EMPTY, "digest": _sha256(config), "size": len(config)},
        "layers": [{"mediaType": BUNDLE_TYPE, "digest": _sha256(bundle), "size": len(bundle)}],
        "subject": subject,
    }
    data = json.dumps(manifest).encode()
    with httpx.Client(base_url=url) as http:
        for blob in (config, bundle):
            done = http.post(
                f"/v2/{repo}/blobs/uploads/", params={"digest": _sha256(blob)}, content=blob
            )
            assert done.status_code == 201, done.text
        put = http.put(
            f"/v2/{repo}/manifests/{_sha256(data)}",
            content=data,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert put.status_code == 201, put.text
    return _sha256(data)


def _verify(home: Path, reference: str, *extra: str, identity: str = IDENTITY):
    return dockyard(
        "verify-attestation",
        "--trusted-root",
        str(TRUSTED_ROOT),
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        ISSUER,
        *extra,
        reference,
        home=home,
        check=False,
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def test_a_bundle_referrer_is_found_and_refused_for_its_other_subject(
    home: Path, registry: RunningRegistry
) -> None:
    host, repo = registry.host, unique_repo("bundle")
    digest = push_image(home, host, repo)
    referrer = _attach_bundle(registry.url, repo, digest, BUNDLE.read_bytes())

    refused = _verify(home, f"{host}/{repo}:1.0")
    assert refused.returncode == 1, refused.stderr
    assert "no valid attestation by the given keys or identity" in refused.stderr
    assert f"bundle referrer {referrer}" in refused.stderr
    assert f"the statement is about {VECTOR_SUBJECT}, not {digest}" in refused.stderr

    shown = json.loads(_verify(home, f"{host}/{repo}@{digest}", "--json").stdout)
    [checked] = shown["attestations"]
    assert shown["verified"] is False
    assert checked["where"] == f"bundle referrer {referrer}"
    assert checked["layer"] == _sha256(BUNDLE.read_bytes())
    assert checked["failure"] == "signed for another artifact"

    # Another identity is refused before the statement is even read.
    other = json.loads(
        _verify(home, f"{host}/{repo}:1.0", "--json", identity="someone@example.com").stdout
    )
    assert other["attestations"][0]["failure"] == "signed by another identity"


def test_a_tampered_bundle_referrer_is_refused_for_its_tampering(
    home: Path, registry: RunningRegistry
) -> None:
    host, repo = registry.host, unique_repo("bundle")
    digest = push_image(home, host, repo)
    document = json.loads(BUNDLE.read_bytes())
    proof = document["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["hashes"][3] = proof["hashes"][4]
    _attach_bundle(registry.url, repo, digest, json.dumps(document).encode())
    shown = json.loads(_verify(home, f"{host}/{repo}:1.0", "--json").stdout)
    [checked] = shown["attestations"]
    assert checked["failure"] == "not proven in the transparency log"
    assert "inclusion proof" in checked["reason"]


def test_keys_and_bundles_are_checked_together(home: Path, registry: RunningRegistry) -> None:
    host, repo = registry.host, unique_repo("bundle")
    digest = push_image(home, host, repo)
    _attach_bundle(registry.url, repo, digest, BUNDLE.read_bytes())
    private, public = key_pair(home, "builder")
    (home / "predicate.json").write_text(json.dumps({"built": "here"}))
    dockyard(
        "attest",
        "--key",
        str(private),
        "--predicate",
        str(home / "predicate.json"),
        f"{host}/{repo}:1.0",
        home=home,
    )
    both = _verify(home, f"{host}/{repo}:1.0", "--key", str(public), "--json")
    assert both.returncode == 0, both.stderr
    found = {item["failure"] for item in json.loads(both.stdout)["attestations"]}
    assert found == {None, "signed for another artifact"}


def test_keyless_options_are_required_together(home: Path, registry: RunningRegistry) -> None:
    host, repo = registry.host, unique_repo("bundle")
    push_image(home, host, repo)
    alone = dockyard(
        "verify-attestation",
        "--trusted-root",
        str(TRUSTED_ROOT),
        f"{host}/{repo}:1.0",
        home=home,
        check=False,
    )
    assert alone.returncode == 2 and "--certificate-identity" in alone.stderr
    nothing = dockyard("verify-attestation", f"{host}/{repo}:1.0", home=home, check=False)
    assert nothing.returncode == 2 and "--trusted-root" in nothing.stderr
