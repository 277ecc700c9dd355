"""Issue 14, "Messages and exit codes" and "Rate-limit headers": what the CLI and the server
say to a new user, checked against real servers (Dockyard, CNCF Distribution) and the real
`dockyard` command."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client.credentials import Credentials, CredentialStore
from tests.auth.conftest import QUIET
from tests.auth.helpers import ADMIN_PASSWORD, AuthRegistry, basic, code_of, errors_of
from tests.support.images import read_layout_index, write_oci_image
from tests.support.push import unique_repo
from tests.support.server import RunningRegistry, free_port

CAROL_PASSWORD = "carol-long-password"


def dockyard(
    *args: str,
    home: Path,
    input: str | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m dockyard ARGS` with a private docker config; never raises on failure."""
    full = {**os.environ, "DOCKER_CONFIG": str(home / "docker"), "HOME": str(home), **(env or {})}
    if "REGISTRY_AUTH_FILE" not in (env or {}):
        full.pop("REGISTRY_AUTH_FILE", None)
    full.pop("XDG_RUNTIME_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env=full,
        input=input,
        timeout=300,
        cwd=cwd,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    return result


def pushed(registry: RunningRegistry, tmp_path: Path, tag: str = "v1") -> tuple[str, str]:
    """A fresh image pushed with `dockyard push`: (repository reference, manifest digest)."""
    image = write_oci_image(tmp_path / "src", tag, seed=unique_repo("seed"))
    repo = f"{registry.host}/{unique_repo('msg')}"
    ok(dockyard("push", "--quiet", f"oci:{tmp_path / 'src'}:{tag}", f"{repo}:{tag}", home=tmp_path))
    return repo, image.manifest_digest


# -- pull and push summaries ----------------------------------------------------------------


def test_pull_summary_speaks_of_blobs_received_and_prints_name_at_digest(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    repo, digest = pushed(registry, tmp_path)
    again = ok(dockyard("push", f"oci:{tmp_path / 'src'}:v1", f"{repo}:v2", home=tmp_path))
    assert f"{repo}@{digest}" in again.stdout, again.stdout
    pulled = ok(dockyard("pull", f"{repo}:v1", f"oci:{tmp_path / 'out'}:v1", home=tmp_path))
    assert "received" in pulled.stdout and "sent" not in pulled.stdout, pulled.stdout
    assert f"{repo}@{digest}" in pulled.stdout, pulled.stdout
    tagged = ok(dockyard("tag", f"{repo}:v1", f"{repo}:v3", home=tmp_path))
    assert tagged.stdout.strip() == f"{repo}:v3: {repo}@{digest}"
    deleted = ok(dockyard("delete", f"{repo}:v3", home=tmp_path))
    assert deleted.stdout.strip() == f"deleted {repo}@{digest}"


def test_pull_by_digest_does_not_label_the_layout_latest(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    repo, digest = pushed(registry, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    pulled = ok(dockyard("pull", f"{repo}@{digest}", home=tmp_path, cwd=work))
    name = repo.rsplit("/", 1)[-1]
    assert ":latest" not in pulled.stdout, pulled.stdout
    entries = read_layout_index(work / name)["manifests"]
    assert [e["digest"] for e in entries] == [digest]
    assert "org.opencontainers.image.ref.name" not in entries[0].get("annotations", {})
    # By tag, the layout carries the tag (the untagged entry of the same digest absorbed).
    ok(dockyard("pull", f"{repo}:v1", home=tmp_path, cwd=work))
    tags = [
        e.get("annotations", {}).get("org.opencontainers.image.ref.name")
        for e in read_layout_index(work / name)["manifests"]
    ]
    assert tags == ["v1"]


# -- docker:// and --insecure everywhere ----------------------------------------------------


def test_docker_transport_is_accepted_by_every_command_taking_a_reference(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    repo, digest = pushed(registry, tmp_path)
    parsed = json.loads(ok(dockyard("ref", "parse", f"docker://{repo}:v1", home=tmp_path)).stdout)
    assert parsed["registry"] == registry.host and parsed["tag"] == "v1"
    assert (
        json.loads(ok(dockyard("ref", "parse", "docker://alpine", home=tmp_path)).stdout)[
            "canonical"
        ]
        == "docker.io/library/alpine:latest"
    )
    listed = ok(dockyard("catalog", f"docker://{registry.host}", home=tmp_path)).stdout
    assert repo.split("/", 1)[1] in listed.splitlines()
    assert ok(dockyard("tags", f"docker://{repo}", home=tmp_path)).stdout.split() == ["v1"]
    shown = json.loads(ok(dockyard("inspect", f"docker://{repo}:v1", home=tmp_path)).stdout)
    assert shown["digest"] == digest
    ok(dockyard("tag", f"docker://{repo}:v1", f"docker://{repo}:v2", home=tmp_path))
    ok(dockyard("delete", "--tag-only", f"docker://{repo}:v2", home=tmp_path))
    assert ok(dockyard("tags", f"docker://{repo}", home=tmp_path)).stdout.split() == ["v1"]


def test_insecure_is_one_flag_meaning_plain_http_to_the_named_registries(
    registry: RunningRegistry, tmp_path: Path
) -> None:
    # The machine's own name reaches the server but is not a loopback name: HTTPS by default.
    name = socket.gethostname()
    assert socket.gethostbyname(name) == "127.0.0.1", "the host name must resolve to 127.0.0.1"
    repo, _ = pushed(registry, tmp_path)
    named = repo.replace("127.0.0.1", name, 1)
    assert dockyard("tags", named, home=tmp_path).returncode != 0
    for args in (
        ["tags", named],
        ["catalog", named.split("/", 1)[0]],
        ["inspect", f"{named}:v1"],
        ["pull", f"{named}:v1", f"oci:{tmp_path / 'o'}"],
    ):
        ok(dockyard(*args, "--insecure", home=tmp_path))
    ok(dockyard("push", f"oci:{tmp_path / 'src'}:v1", f"{named}:v9", "--insecure", home=tmp_path))
    ok(dockyard("copy", f"{named}:v9", f"{named}:v10", "--insecure", home=tmp_path))
    for command in ("login", "push", "pull", "copy", "tag", "inspect", "tags", "delete", "catalog"):
        text = " ".join(ok(dockyard(command, "--help", home=tmp_path)).stdout.split())
        assert "--insecure" in text and "Talk plain HTTP" in text, (command, text)


# -- accounts: denials by scope, login --------------------------------------------------------


@pytest.fixture(scope="module")
def auth_reg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    """`dockyard serve --auth` with carol (owner of carol/…) and her read-only token `ci`."""
    base = tmp_path_factory.mktemp("auth-messages")
    server = RunningRegistry(
        data_dir=base / "data",
        port=free_port(),
        args=("--auth",),
        env={**QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
        log_dir=base,
    ).start()
    reg = AuthRegistry(server)
    reg.add_user("carol", CAROL_PASSWORD)
    try:
        yield reg
    finally:
        server.stop()


def test_wrong_password_at_login_says_the_credentials_were_rejected(
    auth_reg: AuthRegistry, tmp_path: Path
) -> None:
    result = dockyard(
        "login",
        auth_reg.host,
        "-u",
        "carol",
        "--password-stdin",
        input="not-her-password\n",
        home=tmp_path,
    )
    assert result.returncode == 4, result
    assert "rejected the credentials" in result.stderr, result.stderr
    assert "dockyard login" not in result.stderr, result.stderr
    assert not (tmp_path / "docker" / "config.json").exists()


def test_a_denial_by_the_token_scope_names_the_token_its_scope_and_the_scope_needed(
    auth_reg: AuthRegistry, tmp_path: Path
) -> None:
    secret = auth_reg.create_token("carol", "ci", "read")
    wanted = "the token `ci` has scope `read`; pushing needs `write`"
    # Basic credentials with the token as the password.
    with auth_reg.client() as http:
        refused = http.post(
            "/v2/carol/app/blobs/uploads/", headers={"Authorization": basic("carol", secret)}
        )
        assert refused.status_code == 403 and code_of(refused) == "DENIED"
        assert errors_of(refused)[0]["message"] == wanted
        # A bearer token obtained with it: the same answer.
        bearer = auth_reg.bearer("repository:carol/app:pull,push", basic("carol", secret))
        refused = http.post("/v2/carol/app/blobs/uploads/", headers={"Authorization": bearer})
        assert refused.status_code == 403 and errors_of(refused)[0]["message"] == wanted
        # Her password may push: no token is blamed where the account is the limit.
        other = http.post(
            "/v2/dave/app/blobs/uploads/", headers={"Authorization": basic("carol", secret)}
        )
        assert wanted not in other.text
    # The client prints it.
    ok(
        dockyard(
            "login",
            auth_reg.host,
            "-u",
            "carol",
            "--password-stdin",
            input=secret + "\n",
            home=tmp_path,
        )
    )
    write_oci_image(tmp_path / "src", "v1", seed="scope")
    pushed = dockyard(
        "push", f"oci:{tmp_path / 'src'}:v1", f"{auth_reg.host}/carol/app:v1", home=tmp_path
    )
    assert pushed.returncode == 4, pushed
    assert wanted in pushed.stderr, pushed.stderr


# -- credentials files ----------------------------------------------------------------------


def test_registry_auth_file_when_set_is_the_only_containers_auth_file_read(tmp_path: Path) -> None:
    def auth_file(path: Path, user: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        encoded = base64.b64encode(f"{user}:pw".encode()).decode()
        path.write_text(json.dumps({"auths": {"quay.io": {"auth": encoded}}}))
        return path

    runtime = tmp_path / "run"
    auth_file(runtime / "containers" / "auth.json", "kim")
    chosen = tmp_path / "chosen.json"
    chosen.write_text(json.dumps({"auths": {}}))
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "XDG_RUNTIME_DIR": str(runtime)}
    assert CredentialStore(env=env).get("quay.io") == Credentials("kim", "pw")
    store = CredentialStore(env={**env, "REGISTRY_AUTH_FILE": str(chosen)})
    assert store.get("quay.io") is None
    auth_file(chosen, "ivy")
    assert store.get("quay.io") == Credentials("ivy", "pw")
