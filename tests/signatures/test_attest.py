"""Issue 18, attestations: `dockyard attest` stores an in-toto statement in a DSSE envelope as
cosign stores it (`sha256-<hex>.att`) and as an OCI 1.1 referrer; `dockyard verify-attestation`
accepts it with the right key and type, and refuses another key, another type, a statement
about another image and a tampered envelope, each saying why."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from pathlib import Path

import httpx
import pytest

from dockyard.client.api import Client
from dockyard.core import cosign, keys
from tests.signatures.helpers import dockyard, get_blob, get_manifest, key_pair, push_image
from tests.support.peers import Distribution, require
from tests.support.push import unique_repo
from tests.support.server import RunningRegistry

DSSE = "application/vnd.dsse.envelope.v1+json"
SLSA = "https://slsa.dev/provenance/v0.2"
SPDX = "https://spdx.dev/Document"
PROVENANCE = {"builder": {"id": "https://ci.example.com/builder"}, "buildType": "make"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "provenance.json").write_text(json.dumps(PROVENANCE))
    (folder / "sbom.json").write_text(json.dumps({"spdxVersion": "SPDX-2.3", "name": "app"}))
    return folder


def _att_tag(digest: str) -> str:
    return "sha256-" + digest.split(":")[1] + ".att"


def _attest(home: Path, key: Path, reference: str, kind: str, predicate: str) -> dict:
    shown = dockyard(
        "attest",
        "--key",
        str(key),
        "--type",
        kind,
        "--predicate",
        str(home / predicate),
        reference,
        "--json",
        home=home,
    ).stdout
    return json.loads(shown)


def _verify(home: Path, key: Path, reference: str, *extra: str):
    return dockyard(
        "verify-attestation", "--key", str(key), *extra, reference, home=home, check=False
    )


def test_attest_then_verify_round_trip(home: Path, registry: RunningRegistry) -> None:
    host, repo = registry.host, unique_repo("attest")
    digest = push_image(home, host, repo)
    private, public = key_pair(home, "builder")

    shown = dockyard(
        "attest",
        "--key",
        str(private),
        "--type",
        "slsaprovenance",
        "--predicate",
        str(home / "provenance.json"),
        f"{host}/{repo}:1.0",
        home=home,
    ).stdout
    assert f"{host}/{repo}:1.0 is {digest}; the statement names the digest" in shown
    assert f"Attested {host}/{repo}@{digest}: {SLSA}" in shown and _att_tag(digest) in shown

    verified = _verify(home, public, f"{host}/{repo}:1.0", "--type", "slsaprovenance")
    assert verified.returncode == 0, verified.stderr
    assert f"Verified {host}/{repo}@{digest}: {SLSA} attestation" in verified.stdout
    assert f"signed by {public}" in verified.stdout
    assert _verify(home, public, f"{host}/{repo}@{digest}").returncode == 0

    # Stored as cosign stores it: one DSSE layer per attestation under the .att tag, the
    # signature inside the envelope (the annotation empty), cosign's config.
    body, response = get_manifest(registry.url, repo, _att_tag(digest))
    assert response.status_code == 200
    manifest = json.loads(body)
    [layer] = manifest["layers"]
    assert layer["mediaType"] == DSSE
    assert layer["annotations"] == {"dev.cosignproject.cosign/signature": "", "predicateType": SLSA}
    config = get_blob(registry.url, repo, manifest["config"]["digest"])
    assert config == cosign.config([layer["digest"]])
    envelope = json.loads(get_blob(registry.url, repo, layer["digest"]))
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v0.1"
    assert statement["predicateType"] == SLSA and statement["predicate"] == PROVENANCE
    assert statement["subject"] == [
        {"name": f"{host}/{repo}", "digest": {"sha256": digest.split(":")[1]}}
    ]

    # And as a referrer of the image, typed as a DSSE envelope.
    with httpx.Client(base_url=registry.url) as http:
        listed = http.get(f"/v2/{repo}/referrers/{digest}").json()["manifests"]
    [entry] = [e for e in listed if e.get("artifactType") == DSSE]
    referrer = json.loads(get_manifest(registry.url, repo, entry["digest"])[0])
    assert referrer["subject"]["digest"] == digest
    assert referrer["layers"] == [layer]


def test_attestations_append_and_are_told_apart_by_type(
    home: Path, registry: RunningRegistry
) -> None:
    host, repo = registry.host, unique_repo("attest")
    digest = push_image(home, host, repo)
    private, public = key_pair(home, "builder")
    reference = f"{host}/{repo}:1.0"
    _attest(home, private, reference, "slsaprovenance", "provenance.json")
    _attest(home, private, reference, "spdx", "sbom.json")

    body, _ = get_manifest(registry.url, repo, _att_tag(digest))
    types = [layer["annotations"]["predicateType"] for layer in json.loads(body)["layers"]]
    assert types == [SLSA, SPDX]

    assert _verify(home, public, reference, "--type", "spdx").returncode == 0
    document = json.loads(_verify(home, public, reference, "--type", "spdx", "--json").stdout)
    assert document["verified"] is True
    assert {a["predicateType"] for a in document["attestations"] if a["valid"]} == {SPDX}

    wrong_type = _verify(home, public, reference, "--type", "cyclonedx")
    assert wrong_type.returncode == 1
    assert "no valid attestation of type https://cyclonedx.org/bom" in wrong_type.stderr
    assert "attestation of another type" in wrong_type.stderr


def test_another_key_is_refused(home: Path, registry: RunningRegistry) -> None:
    host, repo = registry.host, unique_repo("attest")
    push_image(home, host, repo)
    private, _ = key_pair(home, "builder")
    _, stranger = key_pair(home, "stranger")
    _attest(home, private, f"{host}/{repo}:1.0", "slsaprovenance", "provenance.json")
    refused = _verify(home, stranger, f"{host}/{repo}:1.0")
    assert refused.returncode == 1
    assert "bad signature" in refused.stderr and "another key signed it" in refused.stderr


def test_an_attestation_of_another_image_is_refused(home: Path, registry: RunningRegistry) -> None:
    host, repo = registry.host, unique_repo("attest")
    private, public = key_pair(home, "builder")
    first = push_image(home, host, repo, tag="1.0")
    second = push_image(home, host, repo, tag="2.0")
    _attest(home, private, f"{host}/{repo}:1.0", "slsaprovenance", "provenance.json")
    # The first image's attestation image, put under the second image's .att tag.
    body, _ = get_manifest(registry.url, repo, _att_tag(first))
    with httpx.Client(base_url=registry.url) as http:
        put = http.put(
            f"/v2/{repo}/manifests/{_att_tag(second)}",
            content=body,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert put.status_code == 201, put.text
    refused = _verify(home, public, f"{host}/{repo}:2.0")
    assert refused.returncode == 1
    assert "signed for another artifact" in refused.stderr
    assert f"the statement is about {first}, not {second}" in refused.stderr


def test_a_tampered_envelope_is_refused(home: Path, registry: RunningRegistry) -> None:
    host, repo = registry.host, unique_repo("attest")
    digest = push_image(home, host, repo)
    private, public = key_pair(home, "builder")
    _attest(home, private, f"{host}/{repo}:1.0", "slsaprovenance", "provenance.json")
    body, _ = get_manifest(registry.url, repo, _att_tag(digest))
    manifest = json.loads(body)
    layer = manifest["layers"][0]
    envelope = json.loads(get_blob(registry.url, repo, layer["digest"]))
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["builder"]["id"] = "https://attacker.example.com"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    tampered = json.dumps(envelope).encode()
    tampered_digest = "sha256:" + hashlib.sha256(tampered).hexdigest()
    layer.update(digest=tampered_digest, size=len(tampered))
    config = cosign.config([tampered_digest])
    manifest["config"].update(digest=cosign.sha256(config), size=len(config))
    with httpx.Client(base_url=registry.url) as http:
        for blob in (tampered, config):
            start = http.post(f"/v2/{repo}/blobs/uploads/")
            done = http.put(
                start.headers["Location"], params={"digest": cosign.sha256(blob)}, content=blob
            )
            assert done.status_code == 201, done.text
        # Only the .att tag is tampered with: the referrer still holds the good envelope.
        http.put(
            f"/v2/{repo}/manifests/{_att_tag(digest)}",
            content=json.dumps(manifest).encode(),
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        ).raise_for_status()
    document = json.loads(_verify(home, public, f"{host}/{repo}:1.0", "--json").stdout)
    by_layer = {a["layer"]: a for a in document["attestations"]}
    assert by_layer[tampered_digest]["failure"] == "bad signature"
    assert by_layer[tampered_digest]["valid"] is False
    assert any(a["valid"] for a in document["attestations"])  # the referrer's copy


def test_unattested_images_and_bad_arguments(home: Path, registry: RunningRegistry) -> None:
    host, repo = registry.host, unique_repo("attest")
    push_image(home, host, repo)
    private, public = key_pair(home, "builder")
    missing = _verify(home, public, f"{host}/{repo}:1.0")
    assert missing.returncode == 1 and "no attestations found" in missing.stderr

    bad_type = dockyard(
        "attest",
        "--key",
        str(private),
        "--type",
        "sbom",
        "--predicate",
        str(home / "sbom.json"),
        f"{host}/{repo}:1.0",
        home=home,
        check=False,
    )
    assert bad_type.returncode == 2 and "--type" in bad_type.stderr
    (home / "notjson.txt").write_text("SPDXVersion: SPDX-2.3")
    not_json = dockyard(
        "attest",
        "--key",
        str(private),
        "--type",
        "spdx",
        "--predicate",
        str(home / "notjson.txt"),
        f"{host}/{repo}:1.0",
        home=home,
        check=False,
    )
    assert not_json.returncode == 2 and "not JSON" in not_json.stderr
    no_image = dockyard(
        "attest",
        "--key",
        str(private),
        "--predicate",
        str(home / "sbom.json"),
        f"{host}/{repo}:9.9",
        home=home,
        check=False,
    )
    assert no_image.returncode == 3


def test_concurrent_attestations_are_all_kept(home: Path, registry: RunningRegistry) -> None:
    """Writers racing on one image: every attestation stays findable (each is its own
    referrer, whatever happens to the read-modify-write .att tag)."""
    host, repo = registry.host, unique_repo("attest")
    digest = push_image(home, host, repo)
    private = keys.generate_private_key()
    reference = f"{host}/{repo}:1.0"

    async def race() -> list:
        async with Client() as client:
            return await asyncio.gather(
                *(
                    client.attest(reference, private, f"https://example.com/p/{n}", {"n": n})
                    for n in range(4)
                )
            )

    attested = asyncio.run(race())
    assert {a.digest for a in attested} == {digest}

    async def check():
        async with Client() as client:
            return await client.verify_attestation(reference, [("k", private.public_key())])

    report = asyncio.run(check())
    assert {item.predicate_type for item in report.valid} == {
        f"https://example.com/p/{n}" for n in range(4)
    }
    body, _ = get_manifest(registry.url, repo, _att_tag(digest))
    assert 1 <= len(json.loads(body)["layers"]) <= 4


def test_attest_on_a_registry_without_the_referrers_api(home: Path, tmp_path: Path) -> None:
    """CNCF Distribution 2.8.2: the .att tag as cosign keeps it, the referrer listed in the
    referrers tag; both found again by verify-attestation."""
    require("docker-registry")
    with Distribution(root=tmp_path / "distribution") as server:
        digest = push_image(home, server.host, "app")
        private, public = key_pair(home, "builder")
        shown = _attest(home, private, f"{server.host}/app:1.0", "cyclonedx", "sbom.json")
        _, response = get_manifest(server.url, "app", _att_tag(digest))
        assert response.status_code == 200
        index, response = get_manifest(server.url, "app", digest.replace(":", "-"))
        assert response.status_code == 200
        assert [e["digest"] for e in json.loads(index)["manifests"]] == [shown["referrer"]]
        document = json.loads(
            _verify(home, public, f"{server.host}/app:1.0", "--type", "cyclonedx", "--json").stdout
        )
        assert document["verified"] is True
        assert {a["where"].split()[0] for a in document["attestations"]} == {"tag"}
