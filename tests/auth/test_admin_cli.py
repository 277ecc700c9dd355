"""The admin commands (`dockyard user|org|token|repo ...`) on the data folder of a running
registry: what they print, how they fail, and that the registry acts on their changes at once.

Most commands run in-process (the same Typer app `python -m dockyard` runs); the first test
runs the real entry point as a separate process, password on its standard input.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.auth.helpers import (
    AuthRegistry,
    admin_auth,
    basic,
    get_manifest,
    push_image,
)
from tests.support.peers import require
from tests.support.server import RunningRegistry


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    reg = start_auth_registry()
    with reg.client() as http:
        push_image(http, "corp/private-app", "v1")
        push_image(http, "someone/app", "v1")
    return reg


def can_log_in(reg: AuthRegistry, user: str, password: str) -> bool:
    response = reg.token_response("repository:x/y:pull", basic(user, password))
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def pull_status(reg: AuthRegistry, repo: str, auth: str | None) -> int:
    with reg.client() as http:
        return get_manifest(http, repo, "v1", auth).status_code


def fails(result: object, message: str) -> None:
    exit_code = getattr(result, "exit_code", getattr(result, "returncode", None))
    output = getattr(result, "output", None) or getattr(result, "stderr", "")
    assert exit_code == 2, output
    assert message in output, output


# -- users --------------------------------------------------------------------------------


def test_user_add_as_a_separate_process(reg: AuthRegistry) -> None:
    result = reg.admin_process("user", "add", "proc-user", "--password-stdin", input="proc-pass\n")
    assert result.stdout.strip() == "created user proc-user"
    assert can_log_in(reg, "proc-user", "proc-pass")
    again = reg.admin_process("user", "add", "proc-user", "--password-stdin", input="x\n", ok=False)
    assert again.returncode == 2
    assert "proc-user already exists" in again.stderr


def test_user_add_refuses_bad_input(reg: AuthRegistry) -> None:
    fails(
        reg.admin("user", "add", "Bad Name", "--password-stdin", input="pw\n", ok=False),
        "account names are",
    )
    fails(
        reg.admin("user", "add", "empty-pw", "--password-stdin", input="\n", ok=False),
        "the password is empty",
    )


def test_user_list_admin_and_pull_limit(reg: AuthRegistry) -> None:
    reg.add_user("lister", "lister-pw")
    listing = reg.admin("user", "list").stdout.splitlines()
    assert "admin  (admin)" in listing
    assert "lister" in listing
    assert reg.admin("user", "admin", "lister").stdout.strip() == "lister is an administrator"
    reg.admin("user", "pull-limit", "lister", "500")
    assert "lister  (admin, pull limit 500)" in reg.admin("user", "list").stdout.splitlines()
    reg.admin("user", "pull-limit", "lister", "unlimited")
    assert "lister  (admin, pull limit unlimited)" in reg.admin("user", "list").stdout
    assert (
        reg.admin("user", "admin", "lister", "--revoke").stdout.strip()
        == "lister is no longer an administrator"
    )
    reg.admin("user", "pull-limit", "lister", "default")
    assert "lister" in reg.admin("user", "list").stdout.splitlines()
    fails(
        reg.admin("user", "pull-limit", "lister", "lots", ok=False),
        "the limit is a number, 'unlimited' or 'default'",
    )
    fails(reg.admin("user", "pull-limit", "ghost", "5", ok=False), "no account ghost")
    fails(reg.admin("user", "admin", "ghost", ok=False), "no user ghost")


def test_user_admin_takes_effect(reg: AuthRegistry) -> None:
    reg.add_user("promoted", "promoted-pw")
    auth = basic("promoted", "promoted-pw")
    assert pull_status(reg, "corp/private-app", auth) == 401
    reg.admin("user", "admin", "promoted")
    assert pull_status(reg, "corp/private-app", auth) == 200
    reg.admin("user", "admin", "promoted", "--revoke")
    assert pull_status(reg, "corp/private-app", auth) == 401


def test_user_passwd(reg: AuthRegistry) -> None:
    reg.add_user("changer", "old-pass")
    assert can_log_in(reg, "changer", "old-pass")
    result = reg.admin("user", "passwd", "changer", "--password-stdin", input="new-pass\n")
    assert result.stdout.strip() == "password of changer changed"
    assert not can_log_in(reg, "changer", "old-pass")
    assert can_log_in(reg, "changer", "new-pass")
    fails(
        reg.admin("user", "passwd", "ghost", "--password-stdin", input="pw\n", ok=False),
        "no user ghost",
    )


def test_user_remove(reg: AuthRegistry) -> None:
    reg.add_user("leaver", "leaver-pw")
    secret = reg.create_token("leaver", "ci", "read")
    assert can_log_in(reg, "leaver", secret)
    assert reg.admin("user", "remove", "leaver").stdout.strip() == "removed leaver"
    assert not can_log_in(reg, "leaver", "leaver-pw")
    assert not can_log_in(reg, "leaver", secret)
    assert "leaver" not in reg.admin("user", "list").stdout.split()
    fails(reg.admin("user", "remove", "leaver", ok=False), "no user leaver")


def test_import_htpasswd(reg: AuthRegistry, tmp_path: Path) -> None:
    htpasswd = require("htpasswd")
    lines = [
        "# users of the old registry",
        subprocess.run(
            [htpasswd, "-Bbn", "imported-one", "one-pass"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        subprocess.run(
            [htpasswd, "-Bbn", "imported-two", "two-pass"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        subprocess.run(
            [htpasswd, "-mbn", "md5-user", "md5-pass"], capture_output=True, text=True, check=True
        ).stdout.strip(),
        subprocess.run(
            [htpasswd, "-Bbn", "admin", "not-the-admin-pw"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        "",
    ]
    assert lines[1].startswith("imported-one:$2y$")
    path = tmp_path / "htpasswd"
    path.write_text("\n".join(lines) + "\n")
    result = reg.admin("user", "import-htpasswd", str(path))
    assert result.stdout.strip() == "imported 2 user(s)"
    assert "skipped md5-user: not a bcrypt hash" in result.stderr
    assert "skipped admin: already exists" in result.stderr
    assert can_log_in(reg, "imported-one", "one-pass")
    assert can_log_in(reg, "imported-two", "two-pass")
    assert not can_log_in(reg, "imported-two", "one-pass")
    assert not can_log_in(reg, "admin", "not-the-admin-pw")
    fails(reg.admin("user", "import-htpasswd", str(tmp_path / "missing"), ok=False), "cannot read")


# -- organisations ---------------------------------------------------------------------------


def test_org_members(reg: AuthRegistry) -> None:
    for name in ("boss", "helper", "viewer"):
        reg.add_user(name, f"{name}-pass")
    assert (
        reg.admin("org", "create", "corp", "--owner", "boss").stdout.strip()
        == "created organisation corp"
    )
    assert (
        reg.admin("org", "add-member", "corp", "helper", "--role", "maintainer").stdout.strip()
        == "helper is maintainer of corp"
    )
    assert (
        reg.admin("org", "add-member", "corp", "viewer").stdout.strip()
        == "viewer is reader of corp"
    )
    assert (
        "corp: boss (owner), helper (maintainer), viewer (reader)"
        in reg.admin("org", "list").stdout.splitlines()
    )

    viewer = basic("viewer", "viewer-pass")
    assert pull_status(reg, "corp/private-app", viewer) == 200
    with reg.client() as http:
        denied = http.delete("/v2/corp/private-app/manifests/v1", headers={"Authorization": viewer})
        assert denied.status_code == 403
    assert (
        reg.admin("org", "remove-member", "corp", "viewer").stdout.strip()
        == "removed viewer from corp"
    )
    assert pull_status(reg, "corp/private-app", viewer) == 401
    assert "corp: boss (owner), helper (maintainer)" in reg.admin("org", "list").stdout

    fails(reg.admin("org", "create", "corp", ok=False), "corp already exists")
    fails(
        reg.admin("org", "remove-member", "corp", "viewer", ok=False),
        "viewer is not a member of corp",
    )
    fails(
        reg.admin("org", "add-member", "corp", "viewer", "--role", "emperor", ok=False),
        "role must be one of reader, maintainer, owner",
    )
    fails(reg.admin("org", "add-member", "no-such-org", "viewer", ok=False), "no-such-org")
    fails(reg.admin("org", "add-member", "corp", "no-such-user", ok=False), "no-such-user")
    # The only owner stays: neither demoted nor removed.
    only_owner = "boss is the only owner of corp: make another member an owner first"
    fails(reg.admin("org", "add-member", "corp", "boss", "--role", "reader", ok=False), only_owner)
    fails(reg.admin("org", "remove-member", "corp", "boss", ok=False), only_owner)
    assert "corp: boss (owner), helper (maintainer)" in reg.admin("org", "list").stdout


# -- access tokens ---------------------------------------------------------------------------


def test_tokens(reg: AuthRegistry) -> None:
    reg.add_user("tokener", "tokener-pw")
    ci = reg.create_token("tokener", "ci", "write", "--expires", "90d")
    laptop = reg.create_token("tokener", "laptop", "read")
    assert re.fullmatch(r"dyt_[0-9a-f]{16}_[A-Za-z0-9_-]+", ci)
    assert ci != laptop
    listing = reg.admin("token", "list", "--user", "tokener").stdout
    assert ci not in listing and laptop not in listing  # secrets are shown once only
    rows = {line.split()[1]: line.split() for line in listing.splitlines()}
    assert set(rows) == {"ci", "laptop"}
    assert rows["ci"][0] == ci.split("_")[1]  # the id
    assert rows["ci"][2:4] == ["write", "active"]
    assert rows["laptop"][2:4] == ["read", "active"]
    assert "expires -" not in listing.splitlines()[0]  # ci (created first) expires
    assert "expires -" in listing.splitlines()[1]

    assert can_log_in(reg, "tokener", ci)
    assert reg.admin("token", "revoke", "ci", "--user", "tokener").stdout.strip() == "revoked ci"
    assert not can_log_in(reg, "tokener", ci)
    assert can_log_in(reg, "tokener", laptop)
    assert "revoked" in reg.admin("token", "list", "--user", "tokener").stdout.splitlines()[0]
    # By id as well as by name.
    assert reg.admin("token", "revoke", laptop.split("_")[1], "--user", "tokener").exit_code == 0
    assert not can_log_in(reg, "tokener", laptop)

    fails(
        reg.admin("token", "revoke", "ci", "--user", "tokener", ok=False),
        "tokener has no active token ci",
    )
    fails(
        reg.admin("token", "create", "--user", "tokener", "--name", "ci", ok=False),
        "tokener already has a token named ci",
    )
    fails(
        reg.admin(
            "token", "create", "--user", "tokener", "--name", "x", "--scope", "admin", ok=False
        ),
        "scope must be one of read, write, delete",
    )
    fails(reg.admin("token", "create", "--user", "ghost", "--name", "x", ok=False), "no user ghost")
    fails(
        reg.admin(
            "token", "create", "--user", "tokener", "--name", "y", "--expires", "soon", ok=False
        ),
        "invalid duration",
    )


# -- repositories ----------------------------------------------------------------------------


def test_repo_visibility(reg: AuthRegistry) -> None:
    assert pull_status(reg, "someone/app", None) == 401
    assert (
        reg.admin("repo", "visibility", "someone/app", "public").stdout.strip()
        == "someone/app is public"
    )
    assert pull_status(reg, "someone/app", None) == 200
    reg.admin("repo", "visibility", "someone/app", "private")
    assert pull_status(reg, "someone/app", None) == 401
    fails(
        reg.admin("repo", "visibility", "someone/app", "secret", ok=False),
        "visibility is public or private",
    )
    fails(reg.admin("repo", "visibility", "Not/A/Valid/Name", "public", ok=False), "invalid")


def test_repo_default_visibility(reg: AuthRegistry) -> None:
    reg.add_user("sharer", "sharer-pw")
    sharer = basic("sharer", "sharer-pw")
    assert (
        reg.admin("repo", "default-visibility", "sharer", "public").stdout.strip()
        == "new repositories in sharer/ are public"
    )
    with reg.client() as http:
        push_image(http, "sharer/open", "v1", auth=sharer)
    assert pull_status(reg, "sharer/open", None) == 200
    reg.admin("repo", "default-visibility", "sharer", "default")
    with reg.client() as http:
        push_image(http, "sharer/closed", "v1", auth=sharer)
    assert pull_status(reg, "sharer/closed", None) == 401
    # An explicit setting wins over the namespace's default.
    reg.admin("repo", "visibility", "sharer/closed", "public")
    assert pull_status(reg, "sharer/closed", None) == 200
    fails(
        reg.admin("repo", "default-visibility", "no-such-namespace", "public", ok=False),
        "no-such-namespace",
    )
    fails(
        reg.admin("repo", "default-visibility", "sharer", "maybe", ok=False),
        "visibility is public or private",
    )


def test_commands_refuse_a_bad_config(reg: AuthRegistry, tmp_path: Path) -> None:
    config = tmp_path / "bad.yml"
    config.write_text("no_such_setting: 1\n")
    result = reg.admin("user", "list", "--config", str(config), ok=False)
    fails(result, "invalid configuration")
    assert httpx.get(f"{reg.url}/v2/", headers={"Authorization": admin_auth()}).status_code == 200


def test_first_start_creates_an_admin_once(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    """Without DOCKYARD_ADMIN_PASSWORD a generated password is printed, once. (The restart
    also checks DOCKYARD_DEFAULT_VISIBILITY=public, to spare a server start.)"""
    env = {"DOCKYARD_ADMIN_PASSWORD": ""}
    first = start_registry("--auth", data_dir=tmp_path / "fresh", env=env)
    match = re.search(r"the password\s+(\S+)\s+It is shown only this once", first.log())
    assert match is not None, first.log()
    password = match.group(1)
    response = httpx.get(f"{first.url}/v2/", headers={"Authorization": basic("admin", password)})
    assert response.status_code == 200
    first.stop()
    second = start_registry(
        "--auth", data_dir=tmp_path / "fresh", env={**env, "DOCKYARD_DEFAULT_VISIBILITY": "public"}
    )
    assert password not in second.log()
    admin = basic("admin", password)
    assert httpx.get(f"{second.url}/v2/", headers={"Authorization": admin}).status_code == 200

    # New repositories are public unless their namespace says otherwise.
    reg = AuthRegistry(second)
    reg.add_user("quiet", "quiet-pw")
    reg.admin("repo", "default-visibility", "quiet", "private")
    with reg.client() as http:
        push_image(http, "shared/app", "v1", auth=admin)
        push_image(http, "quiet/app", "v1", auth=admin)
    assert pull_status(reg, "shared/app", None) == 200
    assert pull_status(reg, "quiet/app", None) == 401
