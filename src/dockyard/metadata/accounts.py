"""Accounts, memberships, access tokens and repository visibility: the records and the interface.

Secrets never reach this layer in the clear: passwords arrive as bcrypt hashes and access
tokens as SHA-256 hashes of their random secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from dockyard.metadata.base import AuditOf

USER = "user"
ORG = "org"
ROLES = ("reader", "maintainer", "owner")
TOKEN_SCOPES = ("read", "write", "delete")
VISIBILITIES = ("public", "private")
# What becomes of a removed account's repositories: emptied, or kept under the same names for
# another user, who then owns the namespace (the account turns into an organisation).
DELETE_REPOSITORIES, TRANSFER_REPOSITORIES = "delete", "transfer"


class LastOwner(Exception):
    """The change would leave an organisation with owners without any: nobody but an
    administrator could then manage its members or settings."""


class NamespaceInUse(Exception):
    """Repositories with content live under this name: claiming or freeing it needs a decision
    about them (an administrator's claim, or what to do with them on removal)."""


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    kind: str
    password_hash: str | None
    is_admin: bool
    pull_limit: int | None
    default_visibility: str | None
    credentials_changed_at: float
    created_at: float
    grants_changed_at: float | None = None  # when what it may do last shrank
    disabled_at: float | None = None  # when an administrator disabled it; None: enabled


@dataclass(frozen=True, slots=True)
class AccessToken:
    id: str
    account: str
    name: str
    secret_hash: str
    scope: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """What deciding a caller's rights reads: the account, its roles in organisations, and the
    access token it authenticated with (if any)."""

    account: Account
    roles: dict[str, str]  # organisation name -> role
    token: AccessToken | None = None


class AccountStore(Protocol):
    """Every change takes `audit`, its audit record, written in the change's own transaction
    (`base.AuditOf`): the change and its record commit together or not at all."""

    async def get_account(self, name: str) -> Account | None: ...

    async def identity(self, name: str | None, token_id: str | None = None) -> Identity | None:
        """The account `name` with its roles, in one read. With `token_id`: the account owning
        that access token, with the token; None when there is no such token, or it belongs to
        an account other than `name` (when a name is given). None when there is no account."""

    async def list_accounts(self, kind: str | None = None) -> list[Account]: ...

    async def create_account(
        self,
        name: str,
        kind: str,
        password_hash: str | None,
        is_admin: bool,
        now: float,
        *,
        free_namespace_only: bool = False,
        owner: str | None = None,
        audit: AuditOf = None,
    ) -> Account:
        """Raises KeyError when the name is taken (or `owner`, the user made owner of the
        organisation in the same transaction, does not exist), and NamespaceInUse when
        `free_namespace_only` and repositories with content live under the name."""

    async def update_account(self, name: str, audit: AuditOf = None, **fields: object) -> bool: ...

    async def namespace_has_content(self, namespace: str) -> bool: ...

    async def delete_account(
        self,
        name: str,
        repositories: str | None = None,
        heir: str | None = None,
        now: float = 0.0,
        *,
        audit: AuditOf = None,
    ) -> bool:
        """False when there is no such account. With content in its namespace, `repositories`
        says what becomes of it (DELETE_REPOSITORIES or TRANSFER_REPOSITORIES to the user
        `heir`, KeyError when there is no such user); None raises NamespaceInUse."""

    async def any_admin(self) -> bool: ...

    async def set_disabled(
        self, name: str, disabled_at: float | None, *, audit: AuditOf = None
    ) -> bool | None:
        """Disable a user account (`disabled_at` a time) or enable it (None). False when there
        is no such user; None, and nothing changed, when it would disable the last enabled
        administrator (decided in the same transaction, so two administrators disabling each
        other at once cannot both succeed)."""

    async def set_membership(
        self, org: str, user: str, role: str, *, audit: AuditOf = None
    ) -> None:
        """Add `user` to `org` with `role`, or change their role. KeyError when there is no
        such organisation or user; LastOwner when it demotes the organisation's only owner."""

    async def remove_membership(self, org: str, user: str, *, audit: AuditOf = None) -> bool:
        """False when `user` is no member of `org`; LastOwner when they are its only owner."""

    async def set_namespace_default(
        self,
        namespace: str,
        visibility: str | None,
        registry_default: str,
        *,
        audit: AuditOf = None,
    ) -> bool:
        """The visibility of repositories created in `namespace` from now on (None: the
        registry's, `registry_default`). The namespace's repositories without a setting of
        their own keep the visibility they had, which becomes their own. False when no
        account has that name."""

    async def roles_of(self, user: str) -> dict[str, str]:
        """Organisation name -> role, for every organisation the user belongs to."""

    async def members(self, org: str) -> dict[str, str]: ...

    async def create_token(self, token: AccessToken, *, audit: AuditOf = None) -> None:
        """Raises KeyError when the account already has a token of that name."""

    async def get_token(self, token_id: str) -> AccessToken | None: ...

    async def list_tokens(self, account: str) -> list[AccessToken]: ...

    async def revoke_token(
        self, account: str, name_or_id: str, now: float, *, audit: AuditOf = None
    ) -> bool: ...

    async def touch_token(self, token_id: str, now: float) -> None: ...

    async def get_visibility(self, repository: str) -> str | None: ...

    async def access_version(self) -> int:
        """Moves on with every change to accounts, memberships and access tokens."""

    async def visibility_facts(self, repository: str) -> tuple[bool, str | None, str | None]:
        """(whether the repository exists, its own visibility, its namespace's default)."""

    async def set_visibility(
        self, repository: str, visibility: str, *, audit: AuditOf = None
    ) -> None: ...

    async def visibilities(self, repositories: list[str]) -> Mapping[str, str | None]:
        """Each of those repositories with the visibility set on it, or None (read only: the
        same mapping may be handed to every caller until the next commit)."""
