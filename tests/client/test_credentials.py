"""Credentials in docker's and podman's files and helpers, checked against skopeo too."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.client.credentials import (
    DOCKER_HUB_KEY,
    Credentials,
    CredentialStore,
    config_key,
    normalize_host,
)
from dockyard.client.errors import CredentialsError
from dockyard.client.registry import RegistryClient
from tests.support.peers import ContainersEnv, Distribution, containers_env, require

USERS = {"carol": "s3cret-pass-word"}

# A real docker-credential helper speaking the protocol, keeping secrets in a JSON file.
HELPER = """#!{python}
import json, os, sys
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "{name}-store.json")
data = json.load(open(path)) if os.path.exists(path) else {{}}
action = sys.argv[1]
if action == "store":
    entry = json.load(sys.stdin)
    data[entry["ServerURL"]] = [entry["Username"], entry["Secret"]]
elif action == "get":
    server = sys.stdin.read().strip()
    if server not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": server, "Username": data[server][0],
                      "Secret": data[server][1]}}))
elif action == "erase":
    server = sys.stdin.read().strip()
    if server not in data:
        print("credentials not found in native keychain")
        sys.exit(1)
    del data[server]
json.dump(data, open(path, "w"))
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private DOCKER_CONFIG, no podman files unless a test sets them."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    return tmp_path


def install_helper(folder: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / f"docker-credential-{name}"
    script.write_text(HELPER.format(python=sys.executable, name=name))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder / f"{name}-store.json"


def test_host_names_normalised() -> None:
    for name in (
        "docker.io",
        "index.docker.io",
        "registry-1.docker.io",
        DOCKER_HUB_KEY,
        "https://index.docker.io/v1/",
    ):
        assert normalize_host(name) == "docker.io"
        assert config_key(name) == DOCKER_HUB_KEY
    assert normalize_host("https://ghcr.io/") == "ghcr.io"
    assert normalize_host("http://localhost:5000/v2/") == "localhost:5000"
    assert config_key("localhost:5000") == "localhost:5000"


def test_store_writes_docker_format_atomically(home: Path) -> None:
    config = home / "docker" / "config.json"
    config.parent.mkdir()
    config.write_text(
        json.dumps({"auths": {"other.example": {"auth": "eDp5"}}, "psFormat": "table {{.ID}}"})
    )
    store = CredentialStore()
    assert store.store("ghcr.io", Credentials("carol", "pa:ss")) == config
    assert store.store("docker.io", Credentials("dave", "pw")) == config
    data = json.loads(config.read_text())
    assert data["psFormat"] == "table {{.ID}}"
    assert data["auths"]["other.example"] == {"auth": "eDp5"}
    assert base64.b64decode(data["auths"]["ghcr.io"]["auth"]) == b"carol:pa:ss"
    assert base64.b64decode(data["auths"][DOCKER_HUB_KEY]["auth"]) == b"dave:pw"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert sorted(p.name for p in config.parent.iterdir()) == ["config.json"]
    assert store.get("ghcr.io") == Credentials("carol", "pa:ss")
    assert store.get("index.docker.io") == Credentials("dave", "pw")
    assert store.get("quay.io") is None
    assert store.erase("ghcr.io") is True
    assert store.erase("ghcr.io") is False
    assert store.get("ghcr.io") is None
    assert "other.example" in json.loads(config.read_text())["auths"]


def test_identity_token_round_trip(home: Path) -> None:
    store = CredentialStore()
    store.store("registry.example:5000", Credentials(identity_token="refresh-abc"))
    raw = json.loads(store.docker_config_path.read_text())["auths"]["registry.example:5000"]
    assert raw == {"identitytoken": "refresh-abc"}
    assert store.get("registry.example:5000") == Credentials(identity_token="refresh-abc")


def test_docker_written_keys_with_scheme_are_found(home: Path) -> None:
    config = home / "docker" / "config.json"
    config.parent.mkdir()
    auth = base64.b64encode(b"eve:pw").decode()
    config.write_text(json.dumps({"auths": {"https://myreg.example:5000": {"auth": auth}}}))
    assert CredentialStore().get("myreg.example:5000") == Credentials("eve", "pw")


def test_broken_entry_message_has_no_secret(home: Path) -> None:
    config = home / "docker" / "config.json"
    config.parent.mkdir()
    config.write_text(
        json.dumps(
            {"auths": {"bad.example": {"auth": base64.b64encode(b"no-colon-secret").decode()}}}
        )
    )
    with pytest.raises(CredentialsError) as caught:
        CredentialStore().get("bad.example")
    assert "no-colon-secret" not in str(caught.value)
    config.write_text("{not json")
    with pytest.raises(CredentialsError, match="not valid JSON"):
        CredentialStore().get("bad.example")


def test_creds_store_helper(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = install_helper(home / "bin", "dytest", monkeypatch)
    config = home / "docker" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"credsStore": "dytest"}))
    store = CredentialStore()
    store.store("docker.io", Credentials("frank", "helper-secret"))
    store.store("ghcr.io", Credentials(identity_token="tok-123"))
    data = json.loads(config.read_text())
    assert data["auths"] == {DOCKER_HUB_KEY: {}, "ghcr.io": {}}
    assert "helper-secret" not in config.read_text()
    assert json.loads(secrets.read_text()) == {
        DOCKER_HUB_KEY: ["frank", "helper-secret"],
        "ghcr.io": ["<token>", "tok-123"],
    }
    assert store.get("docker.io") == Credentials("frank", "helper-secret")
    assert store.get("ghcr.io") == Credentials(identity_token="tok-123")
    assert store.get("quay.io") is None
    assert store.erase("docker.io") is True
    assert store.get("docker.io") is None
    assert DOCKER_HUB_KEY not in json.loads(secrets.read_text())


def test_cred_helpers_per_host_and_missing_helper(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = install_helper(home / "bin", "perhost", monkeypatch)
    config = home / "docker" / "config.json"
    config.parent.mkdir()
    config.write_text(
        json.dumps({"credHelpers": {"ghcr.io": "perhost", "quay.io": "not-installed"}})
    )
    store = CredentialStore()
    store.store("ghcr.io", Credentials("gina", "pw1"))
    store.store("localhost:5000", Credentials("hal", "pw2"))
    assert json.loads(secrets.read_text()) == {"ghcr.io": ["gina", "pw1"]}
    assert "auth" in json.loads(config.read_text())["auths"]["localhost:5000"]
    assert store.get("ghcr.io") == Credentials("gina", "pw1")
    with pytest.raises(CredentialsError, match="docker-credential-not-installed"):
        store.get("quay.io")


def test_podman_auth_files(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def entry(user: str) -> dict:
        return {"auth": base64.b64encode(f"{user}:pw".encode()).decode()}

    authfile = home / "auth.json"
    authfile.write_text(
        json.dumps({"auths": {"quay.io": entry("ivy"), "quay.io/team/app": entry("jack")}})
    )
    runtime = home / "run"
    (runtime / "containers").mkdir(parents=True)
    (runtime / "containers" / "auth.json").write_text(
        json.dumps({"auths": {"quay.io": entry("kim"), "docker.io": entry("lee")}})
    )
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    store = CredentialStore()
    assert store.get("docker.io") == Credentials("lee", "pw")
    assert store.get("quay.io") == Credentials("kim", "pw")
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(authfile))
    assert store.get("quay.io") == Credentials("ivy", "pw")
    assert store.get("quay.io", "team/app") == Credentials("jack", "pw")
    assert store.get("quay.io", "team/other") == Credentials("ivy", "pw")
    # The docker config comes first.
    store.store("quay.io", Credentials("mo", "pw"))
    assert store.get("quay.io", "team/app") == Credentials("mo", "pw")


# -- interop with skopeo (containers/image reads and writes the same files) --------------


@pytest.fixture
def basic_registry(tmp_path: Path) -> Iterator[Distribution]:
    with Distribution(tmp_path / "basic", users=USERS) as server:
        yield server


@pytest.fixture
def ce(tmp_path: Path) -> Iterator[ContainersEnv]:
    require("skopeo")
    with containers_env(tmp_path / "containers") as env:
        yield env


def test_skopeo_login_file_is_read(
    basic_registry: Distribution, ce: ContainersEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    ce.skopeo(
        "login",
        "--tls-verify=false",
        "-u",
        "carol",
        "--password-stdin",
        basic_registry.host,
        input=USERS["carol"] + "\n",
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(ce.root / "unused-docker"))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(ce.auth_file))
    store = CredentialStore()
    assert store.get(basic_registry.host) == Credentials("carol", USERS["carol"])

    async def go() -> None:
        async with RegistryClient(basic_registry.host, store=store) as c:
            assert await c.check_login() is None
            assert await c.catalog() == []

    asyncio.run(go())


def test_skopeo_reads_what_we_store(basic_registry: Distribution, ce: ContainersEnv) -> None:
    docker_dir = Path(ce.env["DOCKER_CONFIG"])
    store = CredentialStore(docker_dir)
    listing = ce.skopeo(
        "list-tags", "--tls-verify=false", f"docker://{basic_registry.host}/cred/none", check=False
    )
    assert listing.returncode != 0  # no credentials yet
    store.store(basic_registry.host, Credentials("carol", USERS["carol"]))
    listing = ce.skopeo(
        "list-tags", "--tls-verify=false", f"docker://{basic_registry.host}/cred/none", check=False
    )
    # Authenticated now: the repository is simply unknown instead of unauthorized.
    assert "unauthorized" not in listing.stderr.lower(), listing.stderr
    assert "name unknown" in listing.stderr.lower() or "not found" in listing.stderr.lower()
