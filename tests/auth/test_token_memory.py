"""The token endpoint remembers a password it checked (bcrypt once, not per request) without
keeping the password, and forgets it the moment it stops being right; an access token's use
is recorded at most once a minute instead of a write per token request."""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from dockyard.assembly import open_registry
from dockyard.auth.gate import TOKEN_PASSWORD_SECONDS
from dockyard.auth.setup import build_auth
from dockyard.config import Settings
from dockyard.core.errors import RegistryError
from dockyard.core.passwords import hash_password
from dockyard.service.accounts import TOKEN_USE_RECORD_SECONDS
from dockyard.service.registry import METADATA_FILE
from tests.auth.helpers import AuthRegistry, basic

PASSWORD = "right-Pa55word"
OTHER = "other-Pa55word"
SCOPE = ["repository:carol/app:pull"]


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", auth=True, login_failure_limit=0)


def _set_hash_behind_the_gate(settings: Settings, name: str, password: str) -> None:
    """Replace the stored hash as nothing in Dockyard does: no stamp, no access version moved.
    Only a remembered check can still let the old password in after this."""
    with sqlite3.connect(settings.data_dir / METADATA_FILE) as conn:
        conn.execute(
            "UPDATE accounts SET password_hash = ? WHERE name = ?", (hash_password(password), name)
        )


def test_a_checked_password_is_remembered_under_a_process_key_and_no_longer(
    tmp_path: Path,
) -> None:
    settings = _settings(tmp_path)

    async def scenario() -> None:
        async with open_registry(settings, create=True) as registry:
            await registry.accounts.create_user("carol", PASSWORD)
            auth = await build_auth(registry)
            other = await build_auth(registry)
            issue = auth.issuer.with_basic
            body = await issue("carol", PASSWORD, "127.0.0.1", SCOPE, None, False)
            assert body["scope"] == SCOPE[0]
            # A wrong password right after the right one is refused (and so is a prefix).
            for wrong in (OTHER, PASSWORD[:-1], PASSWORD + "x", ""):
                with pytest.raises(RegistryError):
                    await issue("carol", wrong, "127.0.0.1", SCOPE, None, False)
            # What is kept: a keyed hash, different in every process, of no use to a guesser.
            keys = list(auth.gate._basic)
            assert len(keys) == 1 and len(keys[0]) == 32
            assert PASSWORD.encode() not in keys[0]
            assert keys[0] != hashlib.sha256(f"carol\0{PASSWORD}".encode()).digest()
            assert keys[0] != other.gate._password_memory_key("carol", PASSWORD)
            assert auth.gate._basic.max_age == TOKEN_PASSWORD_SECONDS <= 60
            # The check is remembered: with the hash swapped behind its back, the password
            # it checked still gets a token here, while a gate that never saw it refuses.
            _set_hash_behind_the_gate(settings, "carol", OTHER)
            await issue("carol", PASSWORD, "127.0.0.1", SCOPE, None, False)
            with pytest.raises(RegistryError):
                await other.issuer.with_basic("carol", PASSWORD, "127.0.0.1", SCOPE, None, False)
            # A real password change voids it at once, before any version is read again.
            await registry.accounts.set_password("carol", PASSWORD + "-2")
            with pytest.raises(RegistryError):
                await issue("carol", PASSWORD, "127.0.0.1", SCOPE, None, False)
            await issue("carol", PASSWORD + "-2", "127.0.0.1", SCOPE, None, False)
            # So do disabling and removing the account.
            await registry.accounts.disable_user("carol")
            with pytest.raises(RegistryError):
                await issue("carol", PASSWORD + "-2", "127.0.0.1", SCOPE, None, False)
            await registry.accounts.enable_user("carol")
            await issue("carol", PASSWORD + "-2", "127.0.0.1", SCOPE, None, False)
            await registry.accounts.remove_account("carol")
            with pytest.raises(RegistryError):
                await issue("carol", PASSWORD + "-2", "127.0.0.1", SCOPE, None, False)

    asyncio.run(scenario())


def test_an_access_token_s_use_is_recorded_once_a_minute(tmp_path: Path) -> None:
    settings = _settings(tmp_path)

    async def scenario() -> None:
        async with open_registry(settings, create=True) as registry:
            await registry.accounts.create_user("carol", PASSWORD)
            _, secret = await registry.accounts.create_token("carol", "ci", "read")
            auth = await build_auth(registry)
            issue = auth.issuer.with_basic
            assert (await issue("carol", secret, "127.0.0.1", SCOPE, None, False))["token"]
            (first,) = await registry.accounts.tokens_of("carol")
            assert first.last_used_at is not None
            for _ in range(3):
                await issue("carol", secret, "127.0.0.1", SCOPE, None, False)
            (again,) = await registry.accounts.tokens_of("carol")
            assert again.last_used_at == first.last_used_at, "no write per token request"
            # A token's secret must match in full: one character off is refused.
            with pytest.raises(RegistryError):
                off = secret[:-1] + ("A" if secret[-1] != "A" else "B")
                await issue("carol", off, "127.0.0.1", SCOPE, None, False)
            await registry.accounts.revoke_token("carol", "ci")
            with pytest.raises(RegistryError):
                await issue("carol", secret, "127.0.0.1", SCOPE, None, False)
            assert TOKEN_USE_RECORD_SECONDS <= 60

    asyncio.run(scenario())


def test_every_worker_refuses_a_changed_password_at_once(
    start_auth_registry: Callable[..., AuthRegistry],
) -> None:
    reg = start_auth_registry(env={"DOCKYARD_WORKERS": "2"})
    reg.add_user("dave", PASSWORD)
    old = basic("dave", PASSWORD)
    scope = "repository:dave/app:pull"
    for _ in range(12):  # new connections: both workers check and remember it
        assert reg.token_response(scope, old).status_code == 200
    reg.admin_process("user", "passwd", "dave", "--password-stdin", input=OTHER + "\n")
    for _ in range(12):
        refused = reg.token_response(scope, old)
        assert refused.status_code == 401, refused.text
    assert reg.token_response(scope, basic("dave", OTHER)).status_code == 200
    reg.admin_process("user", "disable", "dave")
    for _ in range(12):
        assert reg.token_response(scope, basic("dave", OTHER)).status_code == 401
