"""Attesting needs push access to the image's repository: another account, or a read-only
token, cannot add an attestation; anyone who may pull can verify attestations and notation
signatures."""

from __future__ import annotations

import json
from pathlib import Path

from tests.auth.helpers import AuthRegistry
from tests.signatures.helpers import dockyard, key_pair, push_image
from tests.support.server import RunningRegistry

NOTATION = Path(__file__).parents[1] / "data" / "signatures" / "notation-jws-oci-layout"
REFERRERS_TAG = "sha256-b8479de3f88fb259a0a9ea82a5b2a052a1ef3c4ebbcfc61482d5ae4c831f8af9"


def _login(home: Path, host: str, user: str, secret: str) -> None:
    dockyard("login", host, "-u", user, "--password-stdin", home=home, input=f"{secret}\n")


def test_attesting_needs_push_access_verifying_only_pull(tmp_path: Path, start_registry) -> None:
    server: RunningRegistry = start_registry(
        "--auth", env={"DOCKYARD_ADMIN_PASSWORD": "admin-password-1"}
    )
    registry = AuthRegistry(server)
    registry.add_user("carol", "carol-password")
    registry.add_user("dave", "dave-password")
    carol, dave, carol_ci = tmp_path / "carol", tmp_path / "dave", tmp_path / "carol-ci"
    for folder in (carol, dave, carol_ci):
        folder.mkdir()
        (folder / "provenance.json").write_text(json.dumps({"builder": {"id": "ci"}}))
    _login(carol, server.host, "carol", "carol-password")
    _login(dave, server.host, "dave", "dave-password")
    _login(carol_ci, server.host, "carol", registry.create_token("carol", "ci", "read"))
    host, repo = server.host, "carol/app"
    digest = push_image(carol, host, repo)
    registry.admin("repo", "visibility", repo, "public")
    dave_key, _ = key_pair(dave, "dave")
    carol_key, carol_pub = key_pair(carol, "carol")
    (carol_ci / "carol.key").write_bytes(carol_key.read_bytes())

    def attest(home: Path, key: Path):
        return dockyard(
            "attest",
            "--key",
            str(key),
            "--type",
            "slsaprovenance",
            "--predicate",
            str(home / "provenance.json"),
            f"{host}/{repo}:1.0",
            home=home,
            check=False,
        )

    # Dave may pull carol's public image, not attest to it; carol's read-only token neither.
    for home, key in ((dave, dave_key), (carol_ci, carol_ci / "carol.key")):
        refused = attest(home, key)
        assert refused.returncode == 4, refused.stderr
    att_tag = "sha256-" + digest.split(":")[1] + ".att"
    assert att_tag not in dockyard("tags", f"{host}/{repo}", home=carol).stdout.split()

    assert attest(carol, carol_key).returncode == 0
    for home in (dave, carol_ci):
        (home / "carol.pub").write_bytes(carol_pub.read_bytes())
        verified = dockyard(
            "verify-attestation",
            "--key",
            str(home / "carol.pub"),
            f"{host}/{repo}:1.0",
            home=home,
        )
        assert "signed by" in verified.stdout

    # A notation-signed image in carol's namespace: dave verifies it with pull access alone.
    layout = NOTATION / "oci-layout"
    dockyard("copy", f"oci:{layout}:v1", f"{host}/carol/e2e:v1", "--quiet", home=carol)
    dockyard(
        "copy",
        "--all",
        f"oci:{layout}:{REFERRERS_TAG}",
        f"{host}/carol/e2e:{REFERRERS_TAG}",
        "--quiet",
        home=carol,
    )
    registry.admin("repo", "visibility", "carol/e2e", "public")
    shown = dockyard(
        "verify", "--trust-store", str(NOTATION / "truststore"), f"{host}/carol/e2e:v1", home=dave
    ).stdout
    assert "Verified" in shown and "CN=e2e" in shown
