"""Signing needs push access to the image's repository: another account, or a read-only token,
cannot add a signature; anyone who may pull can verify."""

from __future__ import annotations

from pathlib import Path

from tests.auth.helpers import AuthRegistry
from tests.signatures.helpers import dockyard, key_pair, push_image
from tests.support.server import RunningRegistry


def _login(home: Path, host: str, user: str, secret: str) -> None:
    dockyard("login", host, "-u", user, "--password-stdin", home=home, input=f"{secret}\n")


def test_signing_needs_push_access_verifying_only_pull(tmp_path: Path, start_registry) -> None:
    server: RunningRegistry = start_registry(
        "--auth", env={"DOCKYARD_ADMIN_PASSWORD": "admin-password-1"}
    )
    registry = AuthRegistry(server)
    registry.add_user("carol", "carol-password")
    registry.add_user("dave", "dave-password")
    carol, dave, carol_ci = tmp_path / "carol", tmp_path / "dave", tmp_path / "carol-ci"
    for folder in (carol, dave, carol_ci):
        folder.mkdir()
    _login(carol, server.host, "carol", "carol-password")
    _login(dave, server.host, "dave", "dave-password")
    _login(carol_ci, server.host, "carol", registry.create_token("carol", "ci", "read"))
    host, repo = server.host, "carol/app"
    digest = push_image(carol, host, repo)
    registry.admin("repo", "visibility", repo, "public")
    dave_key, dave_pub = key_pair(dave, "dave")
    carol_key, carol_pub = key_pair(carol, "carol")
    (carol_ci / "carol.key").write_bytes(carol_key.read_bytes())

    # Dave may pull carol's public image, not sign it; carol's read-only token neither.
    for home, key in ((dave, dave_key), (carol_ci, carol_ci / "carol.key")):
        refused = dockyard("sign", "--key", str(key), f"{host}/{repo}:1.0", home=home, check=False)
        assert refused.returncode == 4, refused.stderr
    sig_tag = "sha256-" + digest.split(":")[1] + ".sig"
    listed = dockyard("tags", f"{host}/{repo}", home=carol).stdout.split()
    assert sig_tag not in listed

    nothing = dockyard(
        "verify", "--key", str(carol_pub), f"{host}/{repo}:1.0", home=dave, check=False
    )
    assert nothing.returncode == 1 and "no signatures found" in nothing.stderr

    dockyard("sign", "--key", str(carol_key), f"{host}/{repo}:1.0", home=carol)
    for home in (dave, carol_ci):
        (home / "carol.pub").write_bytes(carol_pub.read_bytes())
        verified = dockyard(
            "verify", "--key", str(home / "carol.pub"), f"{host}/{repo}:1.0", home=home
        )
        assert "signed by" in verified.stdout
    # Dave's key is not carol's: refused, whoever asks.
    wrong = dockyard("verify", "--key", str(dave_pub), f"{host}/{repo}:1.0", home=dave, check=False)
    assert wrong.returncode == 1 and "signature invalid" in wrong.stderr
