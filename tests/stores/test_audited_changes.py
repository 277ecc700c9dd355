"""Every audited change and its audit record are one transaction, on every database: through the
services that make them (accounts, tokens, memberships, visibility, policies, repository
deletes), the normal path leaves both the change and its one record, and an audit insert that
fails leaves neither. The failure is injected where the record is written inside the change's
transaction (`metadata/audit.record_audit`), as a full disk or a dropped connection would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dockyard.metadata import audit as audit_queries
from dockyard.metadata.accounts import TRANSFER_REPOSITORIES
from dockyard.metadata.base import AuditQuery, RetentionPolicy, SignaturePolicy
from dockyard.service.accounts import AccountService
from dockyard.service.audit import AuditService
from dockyard.service.content_lock import FileContentLock
from dockyard.service.quotas import QuotaService
from dockyard.service.repositories import RepositoryService
from dockyard.service.retention import RetentionService
from dockyard.service.signature_policy import SignaturePolicyService
from dockyard.service.tag_rules import TagRuleService
from dockyard.storage.filesystem import FilesystemBlobStore
from tests.stores.test_repository_pages import digest, push

PASSWORD = "Audit-pass-123"
HASH = "$2b$12$" + "a" * 53  # any stored hash: no password is checked here


class AuditInsertFailed(Exception):
    pass


@dataclass
class Services:
    meta: Any
    accounts: AccountService
    repositories: RepositoryService
    quotas: QuotaService
    tag_rules: TagRuleService
    retention: RetentionService
    signatures: SignaturePolicyService


@pytest.fixture
def services(meta, run, tmp_path: Path) -> Services:
    accounts = AccountService(meta.accounts, meta, audit=AuditService(meta))
    run(accounts.create_user("alice", None, password_hash=HASH))
    run(accounts.create_user("bob", None, password_hash=HASH))
    run(accounts.create_org("acme", "alice"))
    run(accounts.add_member("acme", "bob", "maintainer"))
    push(meta, run, "acme/app", digest(10), ["v1"])
    return Services(
        meta,
        accounts,
        RepositoryService(
            FilesystemBlobStore(tmp_path / "blobs"), meta, FileContentLock(tmp_path / "lock")
        ),
        QuotaService(meta),
        TagRuleService(meta),
        RetentionService(meta),
        SignaturePolicyService(meta),
    )


def records(meta, run, action: str) -> list:
    return run(meta.audit_entries(AuditQuery(action=action)))


@dataclass(frozen=True)
class Change:
    action: str
    make: Callable[[Services], Awaitable[object]]
    done: Callable[[Services], Awaitable[bool]]  # whether the change is in the store


async def account(s: Services, name: str) -> Any:
    return await s.meta.accounts.get_account(name)


async def org_with_owner(s: Services, org: str, owner: str) -> bool:
    """The organisation and its owner exist together or not at all (one transaction)."""
    exists = await account(s, org) is not None
    owned = (owner, "owner") in await s.accounts.members(org)
    assert exists == owned
    return exists


async def token_names(s: Services) -> list[str]:
    return [t.name for t in await s.meta.accounts.list_tokens("alice") if t.revoked_at is None]


async def revoke_ci(s: Services) -> bool:
    await s.accounts.create_token("alice", "ci", "read")
    return await s.accounts.revoke_token("alice", "ci")


async def signature_policy(s: Services) -> None:
    # The store call as the service makes it: the service's own checks want real keys.
    policy = SignaturePolicy("acme", "enforce", ("KEY",), (), "v1", 1.0)
    await s.meta.set_signature_policy(
        policy, audit=s.signatures._entry("acme", {"mode": "enforce"})
    )


CHANGES = [
    Change(
        "user.create",
        lambda s: s.accounts.create_user("carol", PASSWORD),
        lambda s: _is(account(s, "carol")),
    ),
    Change(
        "user.password",
        lambda s: s.accounts.set_password("bob", PASSWORD),
        lambda s: _true(account(s, "bob"), lambda a: a.password_hash != HASH),
    ),
    Change(
        "user.disable",
        lambda s: s.accounts.disable_user("bob"),
        lambda s: _true(account(s, "bob"), lambda a: a.disabled_at is not None),
    ),
    Change(
        "user.admin",
        lambda s: s.accounts.set_admin("bob", True),
        lambda s: _true(account(s, "bob"), lambda a: a.is_admin),
    ),
    Change(
        "user.pull_limit",
        lambda s: s.accounts.set_pull_limit("bob", 7),
        lambda s: _true(account(s, "bob"), lambda a: a.pull_limit == 7),
    ),
    Change(
        "user.remove",
        lambda s: s.accounts.remove_account("bob"),
        lambda s: _true(account(s, "bob"), lambda a: a is None),
    ),
    Change(
        "org.create",
        lambda s: s.accounts.create_org("beta", None),
        lambda s: _is(account(s, "beta")),
    ),
    Change(
        "org.create",
        lambda s: s.accounts.create_org("gamma", "bob"),
        lambda s: org_with_owner(s, "gamma", "bob"),
    ),
    Change(
        "member.set",
        lambda s: s.accounts.add_member("acme", "bob", "reader"),
        lambda s: _true(s.accounts.members("acme"), lambda m: ("bob", "reader") in m),
    ),
    Change(
        "member.remove",
        lambda s: s.accounts.remove_member("acme", "bob"),
        lambda s: _true(s.accounts.members("acme"), lambda m: "bob" not in dict(m)),
    ),
    Change(
        "token.create",
        lambda s: s.accounts.create_token("alice", "ci", "read"),
        lambda s: _true(token_names(s), lambda names: "ci" in names),
    ),
    Change(
        "repository.visibility",
        lambda s: s.accounts.set_visibility("acme/app", "public"),
        lambda s: _true(s.meta.accounts.get_visibility("acme/app"), lambda v: v == "public"),
    ),
    Change(
        "namespace.visibility",
        lambda s: s.accounts.set_namespace_default("acme", "public"),
        lambda s: _true(account(s, "acme"), lambda a: a.default_visibility == "public"),
    ),
    Change(
        "repository.delete",
        lambda s: s.repositories.delete("acme/app"),
        lambda s: _true(s.meta.resolve_tag("acme/app", "v1"), lambda d: d is None),
    ),
    Change(
        "policy.quota",
        lambda s: s.quotas.set("acme", "1GiB"),
        lambda s: _true(s.quotas.get("acme"), lambda q: q.limit == 1 << 30),
    ),
    Change(
        "policy.immutability",
        lambda s: s.tag_rules.add("acme", "v*"),
        lambda s: _true(s.tag_rules.rules("acme"), lambda rules: len(rules) == 1),
    ),
    Change(
        "policy.retention",
        lambda s: s.retention.set(RetentionPolicy("acme", keep_last=3)),
        lambda s: _true(s.retention.policies("acme"), lambda ps: len(ps) == 1),
    ),
    Change(
        "policy.signature",
        signature_policy,
        lambda s: _true(s.meta.signature_policies("acme"), lambda ps: len(ps) == 1),
    ),
]


async def _is(value: Awaitable[object]) -> bool:
    return (await value) is not None


async def _true(value: Awaitable[Any], check: Callable[[Any], bool]) -> bool:
    return bool(check(await value))


IDS = [f"{c.action}-{i}" for i, c in enumerate(CHANGES)]


@pytest.mark.parametrize("change", CHANGES, ids=IDS)
def test_the_change_and_its_record_commit_together(services: Services, run, change) -> None:
    assert not run(change.done(services))
    before = len(records(services.meta, run, change.action))
    run(change.make(services))
    assert run(change.done(services))
    assert len(records(services.meta, run, change.action)) == before + 1


@pytest.mark.parametrize("change", CHANGES, ids=IDS)
def test_a_failed_record_leaves_no_change(
    services: Services, run, change, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = run(services.meta.audit_entries(AuditQuery(limit=1000)))

    def failing(conn: object, entry: object) -> None:
        raise AuditInsertFailed(entry)

    monkeypatch.setattr(audit_queries, "record_audit", failing)
    with pytest.raises(AuditInsertFailed):
        run(change.make(services))
    monkeypatch.undo()
    assert not run(change.done(services))
    assert run(services.meta.audit_entries(AuditQuery(limit=1000))) == before


def test_enabling_and_revoking_and_transfers_too(services: Services, run, monkeypatch) -> None:
    """The changes that need another first: enable after disable, revoke after create, a
    removal that hands the repositories to an heir."""
    run(services.accounts.disable_user("bob"))
    run(services.accounts.create_token("alice", "ci", "read"))
    monkeypatch.setattr(audit_queries, "record_audit", _raise)
    with pytest.raises(AuditInsertFailed):
        run(services.accounts.enable_user("bob"))
    with pytest.raises(AuditInsertFailed):
        run(services.accounts.revoke_token("alice", "ci"))
    with pytest.raises(AuditInsertFailed):
        run(services.accounts.remove_account("acme", TRANSFER_REPOSITORIES, "bob"))
    monkeypatch.undo()
    assert run(account(services, "bob")).disabled_at is not None
    assert run(token_names(services)) == ["ci"]
    assert run(account(services, "acme")) is not None
    assert run(services.accounts.enable_user("bob"))
    assert run(services.accounts.revoke_token("alice", "ci"))
    assert run(services.accounts.remove_account("acme", TRANSFER_REPOSITORIES, "bob"))
    for action in ("user.enable", "token.revoke", "user.remove"):
        assert len(records(services.meta, run, action)) == 1
    # Nothing changed, nothing recorded.
    assert not run(services.accounts.revoke_token("alice", "ci"))
    assert len(records(services.meta, run, "token.revoke")) == 1


def _raise(conn: object, entry: object) -> None:
    raise AuditInsertFailed(entry)
