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


def _swap_token_hash_behind_the_gate(settings: Settings, token_id: str) -> None:
    """Make the stored hash match no secret, as nothing in Dockyard does: no version moved."""
    with sqlite3.connect(settings.data_dir / METADATA_FILE) as conn:
        conn.execute("UPDATE access_tokens SET secret_hash = ? WHERE id = ?", ("0" * 64, token_id))


def test_a_remembered_login_is_checked_again_when_any_account_changes(tmp_path: Path) -> None:
    """While the accounts' version stands, a remembered password or access token answers
    without reading the account; once anything changed, roles are read afresh at the next
    request (with no second bcrypt check for an unchanged password), and an access token is
    checked again in full."""
    settings = _settings(tmp_path)
    scope = ["repository:carol/app:pull", "repository:acme/app:pull,push"]

    async def scenario() -> None:
        async with open_registry(settings, create=True) as registry:
            accounts = registry.accounts
            await accounts.create_user("carol", PASSWORD)
            await accounts.create_user("dan", OTHER)
            record, secret = await accounts.create_token("carol", "ci", "write")
            auth = await build_auth(registry)
            other = await build_auth(registry)
            issue = auth.issuer.with_basic
            for credential in (PASSWORD, secret):
                body = await issue("carol", credential, "127.0.0.1", scope, None, False)
                assert body["scope"] == scope[0]
            assert len(list(auth.gate._basic)) == 2
            # Remembered as checked: with both stored hashes swapped behind the gate's back,
            # this gate still answers from memory and a gate that never saw them refuses.
            _set_hash_behind_the_gate(settings, "carol", OTHER)
            _swap_token_hash_behind_the_gate(settings, record.id)
            for credential in (PASSWORD, secret):
                await issue("carol", credential, "127.0.0.1", scope, None, False)
                with pytest.raises(RegistryError):
                    await other.issuer.with_basic(
                        "carol", credential, "127.0.0.1", scope, None, False
                    )
            # A change to another account moves the version: carol's roles are read again at
            # once (a new membership counts at the next request), her password is not checked
            # again (its stamp did not move), and her access token is checked in full: the
            # swapped hash now refuses it.
            await accounts.create_org("acme", "dan")
            await accounts.add_member("acme", "carol", "maintainer")
            body = await issue("carol", PASSWORD, "127.0.0.1", scope, None, False)
            assert body["scope"] == " ".join(scope)
            with pytest.raises(RegistryError):
                await issue("carol", secret, "127.0.0.1", scope, None, False)
            # And a role taken away is gone at the next request.
            await accounts.remove_member("acme", "carol")
            body = await issue("carol", PASSWORD, "127.0.0.1", scope, None, False)
            assert body["scope"] == scope[0]

    asyncio.run(scenario())


def test_every_worker_sees_role_changes_revocation_and_removal_at_once(
    start_auth_registry: Callable[..., AuthRegistry],
) -> None:
    """Passwords and access tokens remembered by both workers: each change counts at the very
    next token request, whichever worker answers it."""
    reg = start_auth_registry(env={"DOCKYARD_WORKERS": "2"})
    reg.add_user("erin", PASSWORD)
    reg.admin("org", "create", "acme")
    reg.admin("org", "add-member", "acme", "erin", "--role", "maintainer")
    secret = reg.create_token("erin", "ci", "write")
    forms = {"password": basic("erin", PASSWORD), "token": basic("erin", secret)}
    scope = "repository:acme/app:pull,push"

    def granted(form: str, rounds: int = 12) -> set[str]:
        """What each of `rounds` new connections (both workers) is granted; "401" if refused."""
        seen = set()
        for _ in range(rounds):
            answer = reg.token_response(scope, forms[form])
            ok = answer.status_code == 200
            seen.add(answer.json()["scope"] if ok else str(answer.status_code))
        return seen

    for form in forms:
        assert granted(form) == {scope}
    reg.admin("org", "add-member", "acme", "erin", "--role", "reader")
    for form in forms:
        assert granted(form) == {"repository:acme/app:pull"}, form
    reg.admin("org", "remove-member", "acme", "erin")
    for form in forms:
        assert granted(form) == {""}, form
    reg.admin("org", "add-member", "acme", "erin", "--role", "owner")
    for form in forms:
        assert granted(form) == {scope}, form
    reg.admin("token", "revoke", "ci", "--user", "erin")
    assert granted("token") == {"401"}
    assert granted("password") == {scope}
    reg.admin("user", "remove", "erin")
    assert granted("password") == {"401"}
