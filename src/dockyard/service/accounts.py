"""Accounts, organisations, access tokens and repository visibility: the use cases.

Credentials are checked here (bcrypt for passwords, SHA-256 for access-token secrets, both in
constant time); what a checked identity may then do is decided by `auth.policy`.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.passwords import (
    generate_password,
    hash_password,
    hash_secret,
    secrets_match,
    verify_password,
)
from dockyard.metadata.accounts import (
    DELETE_REPOSITORIES,
    ORG,
    ROLES,
    TOKEN_SCOPES,
    TRANSFER_REPOSITORIES,
    USER,
    VISIBILITIES,
    AccessToken,
    Account,
    AccountStore,
    Identity,
    LastOwner,
)
from dockyard.metadata.accounts import (  # raised through this service to the api layer
    NamespaceInUse as NamespaceInUse,
)
from dockyard.metadata.base import MetadataStore
from dockyard.service.audit import AuditService

ACCOUNT_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
TOKEN_PREFIX = "dyt_"
MAX_TOKEN_NAME = 100  # the column's length
# An access token's "last used" moves at most this often: recording every use was a write (and
# a disk sync) per token request, where the day a token was last used is what anyone asks.
TOKEN_USE_RECORD_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, with everything access decisions need."""

    name: str = ""  # "" for anonymous
    is_admin: bool = False
    roles: Mapping[str, str] = field(default_factory=dict)  # namespace -> role
    token_scope: str | None = None  # set when authenticated with an access token
    credential: str | None = None  # that access token's id
    pull_limit: int | None = None
    # The account's (credentials_changed_at, grants_changed_at) when it was read: tokens
    # carry it, and are refused once either moves (see `principal`).
    stamp: tuple[float, float] | None = None
    token_name: str | None = None  # that access token's name, for messages and the access log
    token_expires_at: float | None = None  # when that access token expires (None: never)

    @property
    def anonymous(self) -> bool:
        return not self.name


ANONYMOUS = Principal()


def _last_owner(user: str, org: str) -> RegistryError:
    return RegistryError(
        ErrorCode.CONFLICT,
        f"{user} is the only owner of {org}: make another member an owner first",
    )


def _usable(token: AccessToken) -> bool:
    """Neither revoked nor expired."""
    if token.revoked_at is not None:
        return False
    return token.expires_at is None or token.expires_at > time.time()


def _principal_if_enabled(found: Identity, token: AccessToken | None = None) -> Principal | None:
    """The principal of an enabled user account as read (with the access token it used);
    None for an organisation or a disabled account."""
    account = found.account
    if account.kind != USER or account.disabled_at is not None:
        return None
    roles = dict(found.roles)
    roles[account.name] = "owner"
    return Principal(
        account.name,
        account.is_admin,
        roles,
        token.scope if token is not None else None,
        token.id if token is not None else None,
        account.pull_limit,
        (account.credentials_changed_at, account.grants_changed_at or 0.0),
        token.name if token is not None else None,
        token.expires_at if token is not None else None,
    )


def validate_account_name(name: str) -> str:
    if not (0 < len(name) <= 64 and ACCOUNT_NAME.fullmatch(name)):
        raise RegistryError(
            ErrorCode.NAME_INVALID,
            "account names are 1-64 lower-case letters, "
            "digits and single '.', '_' or '-' between them",
            detail={"name": name[:100]},
        )
    return name


class AccountService:
    def __init__(
        self,
        store: AccountStore,
        meta: MetadataStore,
        default_visibility: str = "private",
        *,
        password_min_length: int = 8,
        audit: AuditService | None = None,
    ) -> None:
        self.store = store
        self.meta = meta
        self.default_visibility = default_visibility
        self.password_min_length = password_min_length
        self.audit = audit or AuditService(meta)

    def check_password(self, password: str) -> None:
        """Refuse a password shorter than the configured minimum (in characters)."""
        if len(password) < self.password_min_length:
            raise RegistryError(
                ErrorCode.BAD_REQUEST,
                f"the password is too short: at least {self.password_min_length} characters "
                "(password_min_length)",
            )

    # -- credentials ---------------------------------------------------------------------
    async def authenticate(self, username: str, secret: str) -> Principal | None:
        """A password or an access token (`dyt_...`) as the password; None if neither fits."""
        if secret.startswith(TOKEN_PREFIX):
            token_id, _, _ = secret.removeprefix(TOKEN_PREFIX).partition("_")
            if not re.fullmatch(r"[0-9a-f]{16}", token_id):
                return None
            # The account, its roles and the token in one read; `username` must own it.
            found = await self.store.identity(username or None, token_id)
            token = found.token if found is not None else None
            if found is None or token is None or not _usable(token):
                return None
            if not secrets_match(secret, token.secret_hash):
                return None
            now = time.time()
            if token.last_used_at is None or now - token.last_used_at >= TOKEN_USE_RECORD_SECONDS:
                await self.store.touch_token(token.id, now)
            return _principal_if_enabled(found, token)
        found = await self.store.identity(username) if username else None
        account = found.account if found is not None else None
        stored = account.password_hash if account and account.kind == USER else None
        if not verify_password(secret, stored):
            return None
        assert found is not None
        # Checked after the password (a guess learns nothing more): a disabled account.
        return _principal_if_enabled(found)

    async def principal(
        self,
        name: str,
        credential: str | None = None,
        issued_at: float | None = None,
        stamp: tuple[float, ...] | None = None,
        *,
        grants: bool = False,
    ) -> Principal | None:
        """Reload an identity (for a refresh token, a bearer token's subject or a remembered
        password check); None when the account is gone (even if made again since), the
        access token was revoked, or the password changed since; and while the account is
        disabled (its tokens and sessions count again once it is enabled).

        `stamp` is the account's `Principal.stamp` when the token was minted (its first item
        alone for what does not depend on the account's rights): it must still be the
        account's, so a token minted in the very second of a change is told apart by the
        change itself, not by the clock. Older tokens have only their `issued_at`, in whole
        seconds: one from the second of a change is refused (the safe side). `grants`: the
        token carries rights, so it is also refused once the account's rights shrank.
        """
        found = await self.store.identity(name, credential)
        if found is None:
            return None
        account = found.account
        current = (account.credentials_changed_at, account.grants_changed_at or 0.0)
        if stamp is not None:
            if tuple(stamp) != current[: len(stamp)]:
                return None
        elif issued_at is not None and issued_at < max(current[: 2 if grants else 1]):
            return None
        token = found.token
        if credential is not None and (token is None or not _usable(token)):
            return None
        return _principal_if_enabled(found, token)

    async def access_version(self) -> int:
        """Moves on with every change to accounts, memberships and access tokens."""
        return await self.store.access_version()

    # -- visibility ----------------------------------------------------------------------
    async def visibility(self, repository: str) -> str | None:
        """public/private for an existing repository; None when it does not exist.

        The same single lookup and the same work either way, so that nobody can tell a
        private repository from a missing one by how long the answer takes."""
        exists, explicit, namespace_default = await self.store.visibility_facts(repository)
        visibility = explicit or namespace_default or self.default_visibility
        return visibility if exists else None

    async def namespace_default(self, namespace: str) -> str:
        account = await self.store.get_account(namespace)
        if account is not None and account.default_visibility:
            return account.default_visibility
        return self.default_visibility

    async def visibilities(self, repositories: list[str]) -> dict[str, str]:
        explicit = await self.store.visibilities(repositories)
        defaults: dict[str, str] = {}
        result = {}
        for repo in repositories:
            own = explicit.get(repo)
            if own is not None:
                result[repo] = own
                continue
            namespace = repo.split("/")[0]
            if namespace not in defaults:
                defaults[namespace] = await self.namespace_default(namespace)
            result[repo] = defaults[namespace]
        return result

    async def set_visibility(self, repository: str, visibility: str) -> None:
        if visibility not in VISIBILITIES:
            raise RegistryError(ErrorCode.BAD_REQUEST, "visibility is public or private")
        await self.store.set_visibility(
            repository,
            visibility,
            audit=self.audit.entry(
                "repository.visibility",
                repository,
                repository=repository,
                detail={"visibility": visibility},
            ),
        )

    async def set_namespace_default(self, namespace: str, visibility: str | None) -> None:
        """The visibility of repositories pushed to `namespace` from now on (None: the
        registry's). Its existing repositories keep theirs. KeyError: no such account."""
        if visibility is not None and visibility not in VISIBILITIES:
            raise RegistryError(ErrorCode.BAD_REQUEST, "visibility is public or private")
        if not await self.store.set_namespace_default(
            namespace,
            visibility,
            self.default_visibility,
            audit=self.audit.entry(
                "namespace.visibility", namespace, detail={"default": visibility}
            ),
        ):
            raise KeyError(namespace)

    # -- administration ------------------------------------------------------------------
    async def create_user(
        self,
        name: str,
        password: str | None,
        *,
        admin: bool = False,
        password_hash: str | None = None,
    ) -> Account:
        validate_account_name(name)
        if password and not password_hash:
            # A taken name is told as such whatever the password (create_account says it too).
            if await self.store.get_account(name) is not None:
                raise KeyError(name)
            self.check_password(password)
        hashed = password_hash or (hash_password(password) if password else None)
        return await self.store.create_account(
            name,
            USER,
            hashed,
            admin,
            time.time(),
            audit=self.audit.entry("user.create", name, detail={"admin": admin} if admin else None),
        )

    async def password_matches(self, name: str, password: str) -> bool:
        """The account's password, never one of its access tokens."""
        account = await self.store.get_account(name)
        stored = account.password_hash if account and account.kind == USER else None
        return verify_password(password, stored)

    async def set_password(self, name: str, password: str) -> bool:
        """Also ends every refresh token issued before (see `principal`)."""
        if await self.store.get_account(name) is None:
            return False  # said as such, whatever the password
        self.check_password(password)
        return await self.store.update_account(
            name,
            audit=self.audit.entry("user.password", name),
            password_hash=hash_password(password),
            credentials_changed_at=time.time(),
        )

    async def kind_of(self, name: str) -> str | None:
        """ "user" or "org" for an account's name; None for a namespace no account owns."""
        account = await self.store.get_account(name)
        return account.kind if account is not None else None

    async def users(self) -> list[Account]:
        """Every user account (not organisations), by name."""
        return await self.store.list_accounts(USER)

    async def disable_user(self, name: str) -> bool:
        """Disable a user: nothing signs in as them (password, access tokens, sessions,
        refresh and bearer tokens are refused, each checked against the account) until
        `enable_user`, which restores every one of them. Their namespace, repositories and
        memberships stay: public repositories are still pulled by anyone, private ones by
        whoever else may. False when there is no such user; CONFLICT for the last enabled
        administrator, whom nobody could enable again from the registry."""
        entry = self.audit.entry("user.disable", name)
        changed = await self.store.set_disabled(
            name, time.time(), audit=lambda changed: entry if changed else None
        )
        if changed is None:
            raise RegistryError(
                ErrorCode.CONFLICT,
                "the last enabled administrator cannot be disabled: make another one first",
            )
        return changed

    async def is_disabled(self, name: str) -> bool:
        """Whether `name` is a user account an administrator disabled."""
        account = await self.store.get_account(name)
        return account is not None and account.disabled_at is not None

    async def enable_user(self, name: str) -> bool:
        """Undo `disable_user`; False when there is no such user."""
        entry = self.audit.entry("user.enable", name)
        return bool(
            await self.store.set_disabled(
                name, None, audit=lambda changed: entry if changed else None
            )
        )

    async def set_admin(self, name: str, admin: bool) -> bool:
        return await self.store.update_account(
            name,
            audit=self.audit.entry("user.admin", name, detail={"admin": admin}),
            is_admin=admin,
        )

    async def set_pull_limit(self, name: str, limit: int | None) -> bool:
        return await self.store.update_account(
            name,
            audit=self.audit.entry("user.pull_limit", name, detail={"limit": limit}),
            pull_limit=limit,
        )

    async def create_org(self, name: str, owner: str | None, *, may_claim: bool = True) -> Account:
        """`may_claim` (administrators) allows a name repositories already live under: taking
        it gives its owners those repositories. Raises KeyError or NamespaceInUse."""
        validate_account_name(name)
        # The organisation, its owner and the record: one transaction.
        return await self.store.create_account(
            name,
            ORG,
            None,
            False,
            time.time(),
            free_namespace_only=not may_claim,
            owner=owner or None,
            audit=self.audit.entry("org.create", name, detail={"owner": owner} if owner else None),
        )

    async def remove_account(
        self, name: str, repositories: str | None = None, heir: str | None = None
    ) -> bool:
        """Delete an account; its repositories are emptied (`delete`) or handed to the user
        `heir` (`transfer`), who then owns the namespace. Without a choice, an account with
        repositories is kept (NamespaceInUse). False when there is no such account."""
        if repositories not in (None, DELETE_REPOSITORIES, TRANSFER_REPOSITORIES):
            raise ValueError(f"repositories is {DELETE_REPOSITORIES} or {TRANSFER_REPOSITORIES}")
        if repositories == TRANSFER_REPOSITORIES and not heir:
            raise ValueError("say which user receives the repositories")
        if repositories == TRANSFER_REPOSITORIES and heir == name:
            raise ValueError("the repositories cannot be handed to the account being removed")
        detail = {"repositories": repositories} if repositories else {}
        if heir and repositories == TRANSFER_REPOSITORIES:
            detail["to"] = heir
        return await self.store.delete_account(
            name,
            repositories,
            heir,
            time.time(),
            audit=self.audit.entry("user.remove", name, detail=detail or None),
        )

    async def add_member(self, org: str, user: str, role: str) -> None:
        """Add `user` to `org`, or change their role. ValueError for an unknown role,
        KeyError when there is no such organisation or user; refused (CONFLICT) when it
        would demote the organisation's only owner."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        try:
            await self.store.set_membership(
                org,
                user,
                role,
                audit=self.audit.entry("member.set", org, detail={"user": user, "role": role}),
            )
        except LastOwner:
            raise _last_owner(user, org) from None

    async def remove_member(self, org: str, user: str) -> bool:
        """False when `user` is no member of `org`; refused (CONFLICT) when they are its only
        owner."""
        try:
            return await self.store.remove_membership(
                org, user, audit=self.audit.entry("member.remove", org, detail={"user": user})
            )
        except LastOwner:
            raise _last_owner(user, org) from None

    async def members(self, org: str) -> list[tuple[str, str]]:
        """(user, role) of every member of the organisation, by name."""
        return sorted((await self.store.members(org)).items())

    async def create_token(
        self, account: str, name: str, scope: str, expires_in: float | None = None
    ) -> tuple[AccessToken, str]:
        """Returns the record and the secret, which is shown once and never stored."""
        if scope not in TOKEN_SCOPES:
            raise ValueError(f"scope must be one of {', '.join(TOKEN_SCOPES)}")
        if not (0 < len(name) <= MAX_TOKEN_NAME and name.isprintable()):
            raise ValueError(f"a token's name is 1-{MAX_TOKEN_NAME} printable characters")
        token_id = secrets.token_hex(8)
        secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(24)}"
        now = time.time()
        record = AccessToken(
            token_id,
            account,
            name,
            hash_secret(secret),
            scope,
            now,
            now + expires_in if expires_in else None,
        )
        await self.store.create_token(
            record,
            audit=self.audit.entry(
                "token.create", name, detail={"account": account, "scope": scope}
            ),
        )
        return record, secret

    async def tokens_of(self, account: str) -> list[AccessToken]:
        """The account's access tokens, revoked ones included (never their secrets)."""
        return await self.store.list_tokens(account)

    async def revoke_token(self, account: str, name_or_id: str) -> bool:
        """Revoke one of the account's own tokens; False when it has no such active token."""
        return await self.store.revoke_token(
            account,
            name_or_id,
            time.time(),
            audit=self.audit.entry("token.revoke", name_or_id, detail={"account": account}),
        )

    async def bootstrap_admin(self, password: str | None) -> str | None:
        """Make the first admin when none exists; returns a generated password to show once."""
        if await self.store.any_admin():
            return None
        generated = None if password else generate_password()
        existing = await self.store.get_account("admin")
        if existing is None:
            await self.create_user("admin", password or generated, admin=True)
        else:
            await self.set_admin("admin", True)
            await self.set_password("admin", password or generated or "")
        return generated

    async def import_htpasswd(self, text: str) -> tuple[int, list[str]]:
        """Users from a CNCF Distribution htpasswd file (bcrypt lines only)."""
        imported, skipped = 0, []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, _, hashed = line.partition(":")
            if not hashed.startswith(("$2y$", "$2a$", "$2b$")):
                skipped.append(f"{user}: not a bcrypt hash")
                continue
            try:
                await self.create_user(user, None, password_hash="$2b$" + hashed[4:])
            except KeyError:
                skipped.append(f"{user}: already exists")
                continue
            except RegistryError:
                skipped.append(f"{user}: not a valid account name")
                continue
            imported += 1
        return imported, skipped
