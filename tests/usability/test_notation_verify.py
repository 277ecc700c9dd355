"""Issue 18: notation signatures verified through a registry. The real tool's OCI layout (image,
signature manifest, referrers tag) is pushed with `dockyard copy`, then verified against its
trust store on Dockyard (referrers API) and on CNCF Distribution 2.8.2 (the referrers tag);
signatures that do not hold are refused, each saying why."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.client.api import Client
from dockyard.client.notation import NotVerified
from dockyard.client.referrers import ArtifactFile
from dockyard.core.notation import ARTIFACT_TYPE
from dockyard.core.signature_failure import Failure
from tests.support.images import write_oci_image
from tests.support.notary import DAY, NOW, JwsSigner, cose_envelope, issue
from tests.support.peers import Distribution, require
from tests.support.push import unique_repo

DATA = Path(__file__).parents[1] / "data" / "signatures" / "notation-jws-oci-layout"
LAYOUT = DATA / "oci-layout"
TRUST = DATA / "truststore"
IMAGE = "sha256:b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"
SIGNATURE = "sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f"
REFERRERS_TAG = IMAGE.replace(":", "-")


def dockyard(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HOME": str(home), "DOCKER_CONFIG": str(home / ".docker")}
    env.pop("REGISTRY_AUTH_FILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=home,
    )
    if check:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def push_layout(home: Path, host: str, repo: str, *, keep_tag: bool) -> None:
    """The image by its tag, and the referrers index (with the signature manifest under it) by
    its tag, as `notation` left them in the layout."""
    dockyard("copy", f"oci:{LAYOUT}:v1", f"{host}/{repo}:v1", "--quiet", home=home)
    dockyard(
        "copy",
        "--all",
        f"oci:{LAYOUT}:{REFERRERS_TAG}",
        f"{host}/{repo}:{REFERRERS_TAG}",
        "--quiet",
        home=home,
    )
    if not keep_tag:
        dockyard("delete", "--tag-only", f"{host}/{repo}:{REFERRERS_TAG}", home=home)


def verify(reference: str, trust: Path = TRUST, **kwargs):
    async def go():
        async with Client() as client:
            return await client.verify_notation(reference, trust, **kwargs)

    return asyncio.run(go())


def not_verified(reference: str, trust: Path = TRUST) -> NotVerified:
    with pytest.raises(NotVerified) as caught:
        verify(reference, trust)
    return caught.value


def test_the_layout_verifies_through_the_referrers_api(registry, home: Path) -> None:
    repo = unique_repo("notation")
    # Without the referrers tag: only the referrers API can find the signature.
    push_layout(home, registry.host, repo, keep_tag=False)
    report = verify(f"{registry.host}/{repo}:v1")
    assert report.subject.digest == IMAGE
    [(digest, found)] = report.valid
    assert digest == SIGNATURE and found.signer.startswith("CN=e2e,")
    assert report.to_json()["verified"] is True


def test_dockyard_verify_with_a_trust_store(registry, home: Path, tmp_path: Path) -> None:
    repo = unique_repo("notation")
    push_layout(home, registry.host, repo, keep_tag=True)
    reference = f"{registry.host}/{repo}:v1"
    shown = dockyard("verify", "--trust-store", str(TRUST), reference, home=home).stdout
    assert f"Verified {registry.host}/{repo}@{IMAGE}" in shown
    assert SIGNATURE in shown and "CN=e2e" in shown
    document = json.loads(
        dockyard("verify", "--trust-store", str(TRUST), reference, "--json", home=home).stdout
    )
    assert document["verified"] is True and document["signatures"][0]["digest"] == SIGNATURE

    other = tmp_path / "other.pem"
    other.write_bytes(issue("Other Root", ca=True).pem())
    refused = dockyard("verify", "--trust-store", str(other), reference, home=home, check=False)
    assert refused.returncode == 1
    assert "untrusted root" in refused.stderr and "not in the trust store" in refused.stderr
    document = json.loads(
        dockyard(
            "verify", "--trust-store", str(other), reference, "--json", home=home, check=False
        ).stdout
    )
    assert document["verified"] is False
    assert document["signatures"][0]["failure"] == "untrusted root"

    empty = tmp_path / "empty"
    empty.mkdir()
    failed = dockyard("verify", "--trust-store", str(empty), reference, home=home, check=False)
    assert failed.returncode == 1 and "no certificates" in failed.stderr
    both = dockyard(
        "verify",
        "--trust-store",
        str(TRUST),
        "--key",
        str(other),
        reference,
        home=home,
        check=False,
    )
    assert both.returncode == 2 and "once for each" in both.stderr
    neither = dockyard("verify", reference, home=home, check=False)
    assert neither.returncode == 2 and "--key" in neither.stderr


def test_the_layout_verifies_through_the_referrers_tag(tmp_path: Path, home: Path) -> None:
    require("docker-registry")
    with Distribution(root=tmp_path / "distribution") as server:
        push_layout(home, server.host, "e2e", keep_tag=True)
        report = verify(f"{server.host}/e2e@{IMAGE}")
        assert [digest for digest, _ in report.valid] == [SIGNATURE]
        # Another root: the signature is found and refused, and says why.
        other = tmp_path / "other.pem"
        other.write_bytes(issue("Other Root", ca=True).pem())
        error = not_verified(f"{server.host}/e2e:v1", other)
        [refusal] = error.failures
        assert refusal.failure is Failure.UNTRUSTED_ROOT and "CN=e2e" in str(error)
        # The referrers tag is anyone's to write: another image's tag listing this signature
        # does not make it that image's signature.
        other, _ = _pushed(home, server.host, "e2e", "another image")
        dockyard(
            "copy",
            "--all",
            f"oci:{LAYOUT}:{REFERRERS_TAG}",
            f"{server.host}/e2e:{other.replace(':', '-')}",
            "--quiet",
            home=home,
        )
        error = not_verified(f"{server.host}/e2e@{other}")
        [refusal] = error.failures
        assert refusal.failure is Failure.WRONG_ARTIFACT and IMAGE in refusal.reason


def test_an_unsigned_image_is_not_verified(registry, home: Path) -> None:
    repo = unique_repo("notation")
    layout = home / "layout"
    write_oci_image(layout, "1.0", seed=repo)
    dockyard("push", f"oci:{layout}:1.0", f"{registry.host}/{repo}:1.0", "--quiet", home=home)
    error = not_verified(f"{registry.host}/{repo}:1.0")
    assert "has no notation signature" in str(error) and not error.failures


def _attach_envelope(
    home: Path, reference: str, envelope: bytes, media_type: str = "application/jose+json"
) -> None:
    path = home / "signature.envelope"
    path.write_bytes(envelope)

    async def go() -> None:
        async with Client() as client:
            await client.attach(reference, ARTIFACT_TYPE, [ArtifactFile(path, media_type)])

    asyncio.run(go())


def _pushed(home: Path, host: str, repo: str, seed: str) -> tuple[str, int]:
    layout = home / f"layout-{seed}"
    image = write_oci_image(layout, "1.0", seed=seed)
    dockyard("push", f"oci:{layout}:1.0", f"{host}/{repo}:1.0", "--quiet", home=home)
    size = len((layout / "blobs" / "sha256" / image.manifest_digest.split(":")[1]).read_bytes())
    return image.manifest_digest, size


def test_signatures_that_do_not_hold_are_refused_each_with_its_reason(
    registry, home: Path, tmp_path: Path
) -> None:
    root = issue("Dockyard Test Root", ca=True, not_before=NOW - 900 * DAY)
    trust = tmp_path / "trust" / "root.crt"
    trust.parent.mkdir()
    trust.write_bytes(root.pem())
    repo = unique_repo("notation")
    digest, size = _pushed(home, registry.host, repo, repo)
    reference = f"{registry.host}/{repo}:1.0"
    media_type = "application/vnd.oci.image.manifest.v1+json"

    # Signed by a certificate that has expired since.
    expired = issue("expired signer", root, not_before=NOW - 400 * DAY, not_after=NOW - DAY)
    envelope = JwsSigner([expired], signing_time=NOW - 100 * DAY).sign(media_type, digest, size)
    _attach_envelope(home, reference, envelope)
    [refusal] = not_verified(reference, trust).failures
    assert refusal.failure is Failure.EXPIRED_CERTIFICATE
    assert "CN=expired signer" in refusal.reason

    # A valid signature of another image, attached to this one.
    other_digest, other_size = _pushed(home, registry.host, repo + "-other", repo + "-other")
    signer = issue("signer", root)
    moved = JwsSigner([signer]).sign(media_type, other_digest, other_size)
    _attach_envelope(home, reference, moved)
    failures = {f.failure for f in not_verified(reference, trust).failures}
    assert failures == {Failure.EXPIRED_CERTIFICATE, Failure.WRONG_ARTIFACT}

    # A tampered envelope: the payload names this image, the signature was over another.
    document = json.loads(moved)
    document["payload"] = json.loads(JwsSigner([signer]).sign(media_type, digest, size))["payload"]
    _attach_envelope(home, reference, json.dumps(document).encode())
    failures = {f.failure for f in not_verified(reference, trust).failures}
    assert Failure.BAD_SIGNATURE in failures

    # One good signature among the bad ones is enough, and the report lists them all.
    _attach_envelope(home, reference, JwsSigner([signer]).sign(media_type, digest, size))
    report = verify(reference, trust)
    assert len(report.valid) == 1 and len(report.refused) == 3


def test_a_cose_signature_verifies_through_the_registry(
    registry, home: Path, tmp_path: Path
) -> None:
    root = issue("Dockyard Test Root", ca=True)
    trust = tmp_path / "root.pem"
    trust.write_bytes(root.pem())
    repo = unique_repo("notation")
    digest, size = _pushed(home, registry.host, repo, repo)
    reference = f"{registry.host}/{repo}:1.0"
    media_type = "application/vnd.oci.image.manifest.v1+json"
    envelope = cose_envelope([issue("cose signer", root)], media_type, digest, size)
    _attach_envelope(home, reference, envelope, "application/cose")
    shown = dockyard("verify", "--trust-store", str(trust), reference, home=home).stdout
    assert "by CN=cose signer" in shown
    [(_, found)] = verify(reference, trust).valid
    assert found.envelope_type == "application/cose"
