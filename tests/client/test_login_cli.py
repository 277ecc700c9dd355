"""`dockyard login` / `dockyard logout` against real registries, as a user runs them."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dockyard.cli.main import app
from dockyard.client.credentials import DOCKER_HUB_KEY, Credentials, CredentialStore
from dockyard.client.registry import RegistryClient
from tests.support.auth_peers import token_distribution
from tests.support.peers import Distribution
from tests.support.server import RunningRegistry

USERS = {"nina": "correct-horse-battery"}
runner = CliRunner()


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    with Distribution(tmp_path_factory.mktemp("login-basic"), users=USERS) as server:
        yield server


def stored_auth(config: Path, key: str) -> dict:
    return json.loads(config.read_text())["auths"][key]


def test_login_logout_basic(basic_registry: Distribution, docker_config: Path) -> None:
    host = basic_registry.host
    result = runner.invoke(
        app, ["login", host, "-u", "nina", "--password-stdin"], input=USERS["nina"] + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "Login Succeeded" in result.output
    assert (
        base64.b64decode(stored_auth(docker_config, host)["auth"]) == b"nina:correct-horse-battery"
    )

    async def use() -> None:
        async with RegistryClient(host, store=CredentialStore()) as c:
            assert await c.catalog() == []

    asyncio.run(use())
    result = runner.invoke(app, ["logout", host])
    assert result.exit_code == 0 and f"Removing login credentials for {host}" in result.output
    assert host not in json.loads(docker_config.read_text())["auths"]
    result = runner.invoke(app, ["logout", host])
    assert result.exit_code == 0 and f"Not logged in to {host}" in result.output


def test_wrong_password_exits_4_and_stores_nothing(
    basic_registry: Distribution, docker_config: Path
) -> None:
    result = runner.invoke(
        app,
        ["login", basic_registry.host, "-u", "nina", "--password-stdin"],
        input="wrong-password-123\n",
    )
    assert result.exit_code == 4
    assert "wrong-password-123" not in result.output
    assert "login to" in result.output and "failed" in result.output
    assert not docker_config.exists()


def test_usage_errors_exit_2(docker_config: Path) -> None:
    result = runner.invoke(app, ["login", "localhost:1", "--password-stdin"], input="x\n")
    assert result.exit_code == 2 and "--username" in result.output
    result = runner.invoke(app, ["login", "--password", "x", "localhost:1"])
    assert result.exit_code == 2  # no way to put a password on the command line


def test_login_to_token_registry_stores_refresh_token(tmp_path: Path, docker_config: Path) -> None:
    with token_distribution(tmp_path / "tok", USERS) as (server, tokens):
        result = runner.invoke(
            app, ["login", server.host, "-u", "nina", "--password-stdin"], input=USERS["nina"]
        )
        assert result.exit_code == 0, result.output
        entry = stored_auth(docker_config, server.host)
        assert set(entry) == {"identitytoken"}
        assert USERS["nina"] not in docker_config.read_text()

        async def use() -> None:
            async with RegistryClient(server.host, store=CredentialStore()) as c:
                assert await c.catalog() == []

        asyncio.run(use())
        assert tokens.requests[-1]["grant"] == "refresh_token"


def test_login_to_dockyard_without_auth(registry: RunningRegistry, docker_config: Path) -> None:
    result = runner.invoke(
        app, ["login", f"http://{registry.host}/", "-u", "x", "--password-stdin"], input="y"
    )
    assert result.exit_code == 0, result.output
    assert registry.host in json.loads(docker_config.read_text())["auths"]


def test_logout_defaults_to_docker_hub(docker_config: Path) -> None:
    CredentialStore().store("docker.io", Credentials("olga", "pw"))
    assert DOCKER_HUB_KEY in json.loads(docker_config.read_text())["auths"]
    result = runner.invoke(app, ["logout"])
    assert result.exit_code == 0 and "Removing login credentials for docker.io" in result.output
    assert json.loads(docker_config.read_text())["auths"] == {}


def test_password_prompt(basic_registry: Distribution, tmp_path: Path) -> None:
    """Without --password-stdin the password is prompted for (getpass, never argv)."""
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker")}
    env.pop("REGISTRY_AUTH_FILE", None)
    # No controlling terminal (new session): getpass and the user prompt read stdin.
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "login", basic_registry.host],
        input=f"nina\n{USERS['nina']}\n",
        capture_output=True,
        text=True,
        env=env,
        start_new_session=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Login Succeeded" in result.stdout
    config = tmp_path / "docker" / "config.json"
    assert (
        base64.b64decode(stored_auth(config, basic_registry.host)["auth"])
        == b"nina:correct-horse-battery"
    )
