"""Accounts and memberships over the metadata store's runner, and the account store they make up
with access tokens (`sql_tokens`) and repository visibility (`sql_visibility`).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.access import access_changed, access_version, account_id, storable
from dockyard.metadata.accounts import (
    DELETE_REPOSITORIES,
    ORG,
    ROLES,
    TRANSFER_REPOSITORIES,
    USER,
    AccessToken,
    Account,
    Identity,
    LastOwner,
    NamespaceInUse,
)
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.audit import audited
from dockyard.metadata.base import AuditOf
from dockyard.metadata.sql_tokens import SQLAccessTokens
from dockyard.metadata.sql_visibility import SQLVisibility

_ACCOUNT_FIELDS = frozenset({"password_hash", "is_admin", "pull_limit", "credentials_changed_at"})


def account_record(row: Any) -> Account:
    return Account(
        row.id,
        row.name,
        row.kind,
        row.password_hash,
        bool(row.is_admin),
        row.pull_limit,
        row.default_visibility,
        row.credentials_changed_at,
        row.created_at,
        row.grants_changed_at,
        row.disabled_at,
    )


# Looked up while authorizing requests: built once, run on the event loop.
GET_ACCOUNT = sa.select(t.accounts).where(t.accounts.c.name == sa.bindparam("name"))


def _membership_query() -> sa.Select[Any]:
    org = t.accounts.alias("org")
    user = t.accounts.alias("member")
    return (
        sa.select(org.c.name.label("org"), user.c.name.label("user"), t.memberships.c.role)
        .join(org, org.c.id == t.memberships.c.org_id)
        .join(user, user.c.id == t.memberships.c.user_id)
    )


def _identity_queries(sqlite: bool) -> tuple[sa.Select[Any], sa.Select[Any]]:
    """Who is calling, in one statement: the account's columns (in `Account`'s order), its
    roles folded into one text ("org:role,org:role": names and roles hold neither character),
    and for the second query the access token's columns (in `AccessToken`'s order, less its
    account). SQLite's form names its separator in the SQL text (group_concat's default), so
    the statement runs on the cursor (`direct`); SQLAlchemy's portable form binds it late."""
    a, tokens = t.accounts.c, t.access_tokens.c
    org = t.accounts.alias("role_org")
    pair = org.c.name + sa.literal_column("':'") + t.memberships.c.role
    folded = sa.func.group_concat(pair) if sqlite else sa.func.aggregate_strings(pair, ",")
    roles = (
        sa.select(folded)
        .join_from(t.memberships, org, org.c.id == t.memberships.c.org_id)
        .where(t.memberships.c.user_id == a.id)
        .scalar_subquery()
    )
    account = (
        a.id,
        a.name,
        a.kind,
        a.password_hash,
        a.is_admin,
        a.pull_limit,
        a.default_visibility,
        a.credentials_changed_at,
        a.created_at,
        a.grants_changed_at,
        a.disabled_at,
        roles,
    )
    by_name = sa.select(*account).where(a.name == sa.bindparam("name"))
    by_token = (
        sa.select(
            *account,
            tokens.id,
            tokens.name,
            tokens.secret_hash,
            tokens.scope,
            tokens.created_at,
            tokens.expires_at,
            tokens.revoked_at,
            tokens.last_used_at,
        )
        .join_from(t.accounts, t.access_tokens, tokens.account_id == a.id)
        .where(tokens.id == sa.bindparam("token"))
    )
    return by_name, by_token


# (by name, by token) for SQLite, and for every other database
IDENTITY_QUERIES = {True: _identity_queries(sqlite=True), False: _identity_queries(sqlite=False)}
_ACCOUNT_WIDTH = 11


def _identity(row: Any) -> Identity:
    account = Account(
        row[0],
        row[1],
        row[2],
        row[3],
        bool(row[4]),
        row[5],
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
    )
    roles = {}
    for pair in (row[_ACCOUNT_WIDTH] or "").split(","):
        if pair:
            org, _, role = pair.partition(":")
            roles[org] = role
    token = None
    if len(row) > _ACCOUNT_WIDTH + 1:
        token_id, *rest = row[_ACCOUNT_WIDTH + 1 :]
        token = AccessToken(token_id, account.name, *rest)
    return Identity(account, roles, token)


MEMBERSHIPS = _membership_query()
ROLES_OF = MEMBERSHIPS.where(MEMBERSHIPS.selected_columns.user == sa.bindparam("user"))
MEMBERS_OF = MEMBERSHIPS.where(MEMBERSHIPS.selected_columns.org == sa.bindparam("org"))


# -- accounts ------------------------------------------------------------------------------
def get_account(conn: Connection, name: str) -> Account | None:
    row = conn.execute(GET_ACCOUNT, {"name": name}).first()
    return account_record(row) if row else None


def identity(conn: Connection, name: str | None, token_id: str | None) -> Identity | None:
    by_name, by_token = IDENTITY_QUERIES[conn.dialect.name == "sqlite"]
    if token_id is None:
        row = direct.execute(conn, by_name, {"name": name}).first()
    else:
        row = direct.execute(conn, by_token, {"token": token_id}).first()
    if row is None:
        return None
    found = _identity(row)
    if name is not None and found.account.name != name:
        return None
    return found


def list_accounts(conn: Connection, kind: str | None) -> list[Account]:
    query = sa.select(t.accounts).order_by(t.accounts.c.name)
    if kind is not None:
        query = query.where(t.accounts.c.kind == kind)
    return [account_record(row) for row in conn.execute(query)]


def create_account(
    conn: Connection,
    name: str,
    kind: str,
    password_hash: str | None,
    is_admin: bool,
    now: float,
    free_namespace_only: bool,
) -> Account:
    if account_id(conn, name) is not None:
        raise KeyError(name)
    # In the same transaction as the insert: a push landing in between cannot slip by.
    if free_namespace_only and namespace_has_content(conn, name):
        raise NamespaceInUse(name)
    conn.execute(
        sa.insert(t.accounts).values(
            name=name,
            kind=kind,
            password_hash=password_hash,
            is_admin=is_admin,
            credentials_changed_at=now,
            created_at=now,
        )
    )
    row = conn.execute(sa.select(t.accounts).where(t.accounts.c.name == name)).one()
    return account_record(row)


def update_account(conn: Connection, name: str, fields: dict[str, object]) -> bool:
    result = conn.execute(sa.update(t.accounts).where(t.accounts.c.name == name).values(**fields))
    if result.rowcount == 0:
        return False
    shrunk = None
    if fields.get("is_admin") is False:
        found = account_id(conn, name)
        shrunk = [found] if found is not None else None
    access_changed(conn, shrunk)
    return True


def namespace_repositories(namespace: str) -> sa.Select[Any]:
    # autoescape: '_' in a name is a LIKE wildcard, which would reach other namespaces.
    return sa.select(t.repositories.c.id).where(
        t.repositories.c.name.startswith(namespace + "/", autoescape=True)
    )


def namespace_has_content(conn: Connection, namespace: str) -> bool:
    """Manifests or blobs in a repository under `namespace/`, as the catalog counts them."""
    ids = namespace_repositories(namespace).scalar_subquery()
    return bool(
        conn.execute(
            sa.select(
                sa.or_(
                    sa.exists().where(t.manifests.c.repository_id.in_(ids)),
                    sa.exists().where(t.repository_blobs.c.repository_id.in_(ids)),
                )
            )
        ).scalar()
    )


def empty_namespace(conn: Connection, namespace: str) -> None:
    """Every tag, manifest, blob link and setting of the namespace's repositories. The rows
    of the repositories stay: workers keep their ids in memory, and an empty repository
    is nobody's content (bytes go at the next garbage collection)."""
    ids = list(conn.execute(namespace_repositories(namespace)).scalars())
    if not ids:
        return
    for table in (
        t.tags,
        t.manifest_references,
        t.manifests,
        t.repository_blobs,
        t.repository_settings,
        t.repository_info,
    ):
        conn.execute(sa.delete(table).where(table.c.repository_id.in_(ids)))


def delete_account(
    conn: Connection, name: str, repositories: str | None, heir: str | None, now: float
) -> bool:
    found = account_id(conn, name)
    if found is None:
        return False
    heir_id = None
    if repositories == TRANSFER_REPOSITORIES:
        heir_id = account_id(conn, heir or "", USER)
        if heir_id is None or heir_id == found:
            raise KeyError(heir or "")
    elif repositories == DELETE_REPOSITORIES:
        empty_namespace(conn, name)
    elif repositories is not None:
        raise ValueError(
            f"repositories: {DELETE_REPOSITORIES} or {TRANSFER_REPOSITORIES}, not {repositories!r}"
        )
    elif namespace_has_content(conn, name):
        raise NamespaceInUse(name)
    conn.execute(sa.delete(t.access_tokens).where(t.access_tokens.c.account_id == found))
    members = list(
        conn.execute(
            sa.select(t.memberships.c.user_id).where(t.memberships.c.org_id == found)
        ).scalars()
    )
    conn.execute(
        sa.delete(t.memberships).where(
            sa.or_(t.memberships.c.org_id == found, t.memberships.c.user_id == found)
        )
    )
    if heir_id is None:
        conn.execute(sa.delete(t.accounts).where(t.accounts.c.id == found))
        access_changed(conn, members)
        return True
    # Handed over: the name stays taken (nobody else can claim the repositories) by an
    # organisation the heir owns, under which the repositories keep their names.
    conn.execute(
        sa.update(t.accounts)
        .where(t.accounts.c.id == found)
        .values(
            kind=ORG,
            password_hash=None,
            is_admin=False,
            pull_limit=None,
            credentials_changed_at=now,
        )
    )
    conn.execute(sa.insert(t.memberships).values(org_id=found, user_id=heir_id, role="owner"))
    access_changed(conn, [*members, found])
    return True


def set_namespace_default(
    conn: Connection, namespace: str, visibility: str | None, registry_default: str
) -> bool:
    current = conn.execute(
        sa.select(t.accounts.c.default_visibility).where(t.accounts.c.name == namespace)
    ).first()
    if current is None:
        return False
    before = current.default_visibility or registry_default
    if before != (visibility or registry_default):
        # Only repositories with content: an emptied one's row stays behind, and when it is
        # pushed again it is a new repository, which takes the new default.
        settled = sa.exists().where(t.repository_settings.c.repository_id == t.repositories.c.id)
        in_use = sa.or_(
            sa.exists().where(t.manifests.c.repository_id == t.repositories.c.id),
            sa.exists().where(t.repository_blobs.c.repository_id == t.repositories.c.id),
        )
        ids = (
            conn.execute(namespace_repositories(namespace).where(~settled, in_use)).scalars().all()
        )
        if ids:
            conn.execute(
                sa.insert(t.repository_settings),
                [{"repository_id": repo_id, "visibility": before} for repo_id in ids],
            )
    conn.execute(
        sa.update(t.accounts)
        .where(t.accounts.c.name == namespace)
        .values(default_visibility=visibility)
    )
    access_changed(conn)
    return True


def any_admin(conn: Connection) -> bool:
    return bool(conn.execute(sa.select(sa.exists().where(t.accounts.c.is_admin))).scalar())


def set_disabled(conn: Connection, name: str, disabled_at: float | None) -> bool | None:
    accounts = t.accounts
    row = conn.execute(
        sa.select(accounts.c.id, accounts.c.is_admin, accounts.c.disabled_at).where(
            accounts.c.name == name, accounts.c.kind == USER
        )
    ).first()
    if row is None:
        return False
    if disabled_at is not None and row.is_admin and row.disabled_at is None:
        # Counted in the transaction that writes: SQLite's writers take turns, and
        # PostgreSQL's write transactions are serializable, so of two administrators
        # disabling each other at once the second runs again and finds the first disabled.
        enabled = conn.execute(
            sa.select(accounts.c.id).where(
                accounts.c.kind == USER, accounts.c.is_admin, accounts.c.disabled_at.is_(None)
            )
        ).scalars()
        if not set(enabled) - {row.id}:
            return None
    if (row.disabled_at is None) == (disabled_at is None):
        return True  # already so: a disabled account keeps the time it was disabled
    conn.execute(sa.update(accounts).where(accounts.c.id == row.id).values(disabled_at=disabled_at))
    access_changed(conn)
    return True


# -- memberships ---------------------------------------------------------------------------
def _role(conn: Connection, org_id: int, user_id: int) -> str | None:
    role: str | None = conn.execute(
        sa.select(t.memberships.c.role).where(
            t.memberships.c.org_id == org_id, t.memberships.c.user_id == user_id
        )
    ).scalar()
    return role


def _refuse_last_owner(conn: Connection, org: str, org_id: int, user_id: int) -> str | None:
    """The member's role, once it is clear that they are not the organisation's only owner
    (LastOwner when they are). Asked in the transaction that then changes the role: writes
    are serialised (SQLite) or serializable (PostgreSQL), so two owners demoting each other
    at once cannot both pass it."""
    role = _role(conn, org_id, user_id)
    if role == "owner":
        owners = conn.execute(
            sa.select(sa.func.count())
            .select_from(t.memberships)
            .where(t.memberships.c.org_id == org_id, t.memberships.c.role == "owner")
        ).scalar_one()
        if owners <= 1:
            raise LastOwner(org)
    return role


def set_membership(conn: Connection, org: str, user: str, role: str) -> None:
    org_id = account_id(conn, org, ORG)
    user_id = account_id(conn, user, USER)
    if org_id is None or user_id is None:
        raise KeyError(org if org_id is None else user)
    if role == "owner":
        previous = _role(conn, org_id, user_id)
    else:
        previous = _refuse_last_owner(conn, org, org_id, user_id)
    if previous == role:
        return
    conn.execute(
        sa.delete(t.memberships).where(
            t.memberships.c.org_id == org_id, t.memberships.c.user_id == user_id
        )
    )
    conn.execute(sa.insert(t.memberships).values(org_id=org_id, user_id=user_id, role=role))
    lowered = previous is not None and ROLES.index(role) < ROLES.index(previous)
    access_changed(conn, [user_id] if lowered else None)


def remove_membership(conn: Connection, org: str, user: str) -> bool:
    org_id = account_id(conn, org, ORG)
    user_id = account_id(conn, user)
    if org_id is None or user_id is None:
        return False
    if _refuse_last_owner(conn, org, org_id, user_id) is None:
        return False
    conn.execute(
        sa.delete(t.memberships).where(
            t.memberships.c.org_id == org_id, t.memberships.c.user_id == user_id
        )
    )
    access_changed(conn, [user_id])
    return True


def roles_of(conn: Connection, user: str) -> dict[str, str]:
    return {row.org: row.role for row in conn.execute(ROLES_OF, {"user": user})}


def members(conn: Connection, org: str) -> dict[str, str]:
    return {row.user: row.role for row in conn.execute(MEMBERS_OF, {"org": org})}


# -- access tokens -------------------------------------------------------------------------


class SQLAccountStore(SQLAccessTokens, SQLVisibility, SQLAggregate):
    """The `AccountStore` over the same runner and repository ids as the metadata store."""

    async def access_version(self) -> int:
        return await self.runner.read(access_version, inline=True, key=("access version",))

    async def get_account(self, name: str) -> Account | None:
        if not storable(name):
            return None
        return await self.runner.read(
            partial(get_account, name=name), inline=True, key=("account", name)
        )

    async def identity(self, name: str | None, token_id: str | None = None) -> Identity | None:
        if (name is not None and not storable(name)) or (
            token_id is not None and not storable(token_id)
        ):
            return None
        return await self.runner.read(
            partial(identity, name=name, token_id=token_id),
            inline=True,
            key=("identity", name, token_id),
        )

    async def list_accounts(self, kind: str | None = None) -> list[Account]:
        return await self.runner.read(partial(list_accounts, kind=kind))

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
        def create(conn: Connection) -> Account:
            account = create_account(
                conn, name, kind, password_hash, is_admin, now, free_namespace_only
            )
            if owner is not None:
                set_membership(conn, name, owner, "owner")
            return account

        return await self.runner.write(audited(create, audit))

    async def update_account(self, name: str, audit: AuditOf = None, **fields: object) -> bool:
        unknown = set(fields) - _ACCOUNT_FIELDS
        if unknown:
            raise ValueError(f"not account fields: {sorted(unknown)}")
        if not storable(name):
            return False
        return await self.runner.write(
            audited(partial(update_account, name=name, fields=fields), audit)
        )

    async def namespace_has_content(self, namespace: str) -> bool:
        return await self.runner.read(partial(namespace_has_content, namespace=namespace))

    async def delete_account(
        self,
        name: str,
        repositories: str | None = None,
        heir: str | None = None,
        now: float = 0.0,
        *,
        audit: AuditOf = None,
    ) -> bool:
        return await self.runner.write(
            audited(
                partial(delete_account, name=name, repositories=repositories, heir=heir, now=now),
                audit,
            )
        )

    async def any_admin(self) -> bool:
        return await self.runner.read(any_admin)

    async def set_namespace_default(
        self,
        namespace: str,
        visibility: str | None,
        registry_default: str,
        *,
        audit: AuditOf = None,
    ) -> bool:
        if not storable(namespace):
            return False
        return await self.runner.write(
            audited(
                partial(
                    set_namespace_default,
                    namespace=namespace,
                    visibility=visibility,
                    registry_default=registry_default,
                ),
                audit,
            )
        )

    async def set_disabled(
        self, name: str, disabled_at: float | None, *, audit: AuditOf = None
    ) -> bool | None:
        if not storable(name):
            return False
        return await self.runner.write(
            audited(partial(set_disabled, name=name, disabled_at=disabled_at), audit)
        )

    async def set_membership(
        self, org: str, user: str, role: str, *, audit: AuditOf = None
    ) -> None:
        await self.runner.write(
            audited(partial(set_membership, org=org, user=user, role=role), audit)
        )

    async def remove_membership(self, org: str, user: str, *, audit: AuditOf = None) -> bool:
        return await self.runner.write(
            audited(partial(remove_membership, org=org, user=user), audit)
        )

    async def roles_of(self, user: str) -> dict[str, str]:
        return await self.runner.read(partial(roles_of, user=user), inline=True)

    async def members(self, org: str) -> dict[str, str]:
        return await self.runner.read(partial(members, org=org))
