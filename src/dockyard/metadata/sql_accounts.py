"""The account store over the same SQL engine (and thread pool) as the metadata store."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.accounts import (
    DELETE_REPOSITORIES,
    ORG,
    ROLES,
    TRANSFER_REPOSITORIES,
    USER,
    AccessToken,
    Account,
    NamespaceInUse,
)
from dockyard.metadata.sql import SQLMetadataStore, _bump_version

ACCESS_VERSION = "access"
_ACCOUNT_FIELDS = frozenset(
    {"password_hash", "is_admin", "pull_limit", "default_visibility", "credentials_changed_at"}
)



def _storable(text: str) -> bool:
    """Whether a name could be stored at all: PostgreSQL refuses text holding a NUL character
    (an error, where SQLite stores anything), so a name with one is nobody's."""
    return "\x00" not in text

class SQLAccountStore:
    def __init__(self, meta: SQLMetadataStore) -> None:
        self.meta = meta
        self._read = meta._read
        self._write = meta._write
        query = self._membership_query()
        self._ROLES_OF = query.where(query.selected_columns.user == sa.bindparam("user"))

    @staticmethod
    def _account(row: Any) -> Account:
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
        )

    @staticmethod
    def _access_changed(conn: Connection, shrunk: list[int] | None = None) -> None:
        """In the transaction of every change to accounts, memberships or tokens: every server
        process drops what it remembers of sessions when it sees the version move. `shrunk`:
        accounts whose rights just shrank, whose access tokens minted before are refused."""
        _bump_version(conn, t.listing_versions, "name", ACCESS_VERSION)
        if shrunk:
            conn.execute(sa.update(t.accounts).where(t.accounts.c.id.in_(shrunk))
                         .values(grants_changed_at=time.time()))

    _ACCESS_VERSION = sa.select(t.listing_versions.c.version).where(
        t.listing_versions.c.name == ACCESS_VERSION)

    async def access_version(self) -> int:
        return await self._read(
            lambda conn: conn.execute(self._ACCESS_VERSION).scalar() or 0, inline=True)

    @staticmethod
    def _account_id(conn: Connection, name: str, kind: str | None = None) -> int | None:
        if not _storable(name):
            return None
        query = sa.select(t.accounts.c.id).where(t.accounts.c.name == name)
        if kind is not None:
            query = query.where(t.accounts.c.kind == kind)
        return conn.execute(query).scalar()

    # -- accounts ------------------------------------------------------------------------
    # Lookups made while authorizing requests: built once, run on the event loop (see
    # SQLMetadataStore._read).
    _GET_ACCOUNT = sa.select(t.accounts).where(t.accounts.c.name == sa.bindparam("name"))
    _GET_VISIBILITY = (
        sa.select(t.repository_settings.c.visibility)
        .join(t.repositories, t.repositories.c.id == t.repository_settings.c.repository_id)
        .where(t.repositories.c.name == sa.bindparam("repository"))
    )

    async def get_account(self, name: str) -> Account | None:
        if not _storable(name):
            return None

        def fn(conn: Connection) -> Account | None:
            row = conn.execute(self._GET_ACCOUNT, {"name": name}).first()
            return self._account(row) if row else None

        return await self._read(fn, inline=True)

    async def list_accounts(self, kind: str | None = None) -> list[Account]:
        def fn(conn: Connection) -> list[Account]:
            query = sa.select(t.accounts).order_by(t.accounts.c.name)
            if kind is not None:
                query = query.where(t.accounts.c.kind == kind)
            return [self._account(row) for row in conn.execute(query)]

        return await self._read(fn)

    async def create_account(
        self,
        name: str,
        kind: str,
        password_hash: str | None,
        is_admin: bool,
        now: float,
        *,
        free_namespace_only: bool = False,
    ) -> Account:
        def fn(conn: Connection) -> Account:
            if self._account_id(conn, name) is not None:
                raise KeyError(name)
            # In the same transaction as the insert: a push landing in between cannot slip by.
            if free_namespace_only and self._has_content(conn, name):
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
            return self._account(row)

        return await self._write(fn)

    async def update_account(self, name: str, **fields: object) -> bool:
        unknown = set(fields) - _ACCOUNT_FIELDS
        if unknown:
            raise ValueError(f"not account fields: {sorted(unknown)}")
        if not _storable(name):
            return False

        def fn(conn: Connection) -> bool:
            result = conn.execute(
                sa.update(t.accounts).where(t.accounts.c.name == name).values(**fields)
            )
            if result.rowcount == 0:
                return False
            shrunk = None
            if fields.get("is_admin") is False:
                shrunk = [self._account_id(conn, name)]
            self._access_changed(conn, shrunk)  # type: ignore[arg-type]
            return True

        return await self._write(fn)

    @staticmethod
    def _namespace_repositories(namespace: str) -> sa.Select:
        # autoescape: '_' in a name is a LIKE wildcard, which would reach other namespaces.
        return sa.select(t.repositories.c.id).where(
            t.repositories.c.name.startswith(namespace + "/", autoescape=True)
        )

    def _has_content(self, conn: Connection, namespace: str) -> bool:
        """Manifests or blobs in a repository under `namespace/`, as the catalog counts them."""
        ids = self._namespace_repositories(namespace).scalar_subquery()
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

    async def namespace_has_content(self, namespace: str) -> bool:
        return await self._read(lambda conn: self._has_content(conn, namespace))

    def _empty_namespace(self, conn: Connection, namespace: str) -> None:
        """Every tag, manifest, blob link and setting of the namespace's repositories. The rows
        of the repositories stay: workers keep their ids in memory, and an empty repository
        is nobody's content (bytes go at the next garbage collection)."""
        ids = list(conn.execute(self._namespace_repositories(namespace)).scalars())
        if not ids:
            return
        for table in (
            t.tags,
            t.manifest_references,
            t.manifests,
            t.repository_blobs,
            t.repository_settings,
        ):
            conn.execute(sa.delete(table).where(table.c.repository_id.in_(ids)))
        for repo_id in ids:
            self.meta._tags_changed(conn, repo_id)
        self.meta._catalog_changed(conn)

    async def delete_account(
        self,
        name: str,
        repositories: str | None = None,
        heir: str | None = None,
        now: float = 0.0,
    ) -> bool:
        def fn(conn: Connection) -> bool:
            account_id = self._account_id(conn, name)
            if account_id is None:
                return False
            heir_id = None
            if repositories == TRANSFER_REPOSITORIES:
                heir_id = self._account_id(conn, heir or "", USER)
                if heir_id is None or heir_id == account_id:
                    raise KeyError(heir or "")
            elif repositories == DELETE_REPOSITORIES:
                self._empty_namespace(conn, name)
            elif repositories is not None:
                raise ValueError(
                    f"repositories: {DELETE_REPOSITORIES} or "
                    f"{TRANSFER_REPOSITORIES}, not {repositories!r}"
                )
            elif self._has_content(conn, name):
                raise NamespaceInUse(name)
            conn.execute(
                sa.delete(t.access_tokens).where(t.access_tokens.c.account_id == account_id)
            )
            members = list(conn.execute(sa.select(t.memberships.c.user_id).where(
                t.memberships.c.org_id == account_id)).scalars())
            conn.execute(
                sa.delete(t.memberships).where(
                    sa.or_(
                        t.memberships.c.org_id == account_id, t.memberships.c.user_id == account_id
                    )
                )
            )
            if heir_id is None:
                conn.execute(sa.delete(t.accounts).where(t.accounts.c.id == account_id))
                self._access_changed(conn, members)
                return True
            # Handed over: the name stays taken (nobody else can claim the repositories) by an
            # organisation the heir owns, under which the repositories keep their names.
            conn.execute(
                sa.update(t.accounts)
                .where(t.accounts.c.id == account_id)
                .values(
                    kind=ORG,
                    password_hash=None,
                    is_admin=False,
                    pull_limit=None,
                    credentials_changed_at=now,
                )
            )
            conn.execute(
                sa.insert(t.memberships).values(org_id=account_id, user_id=heir_id, role="owner")
            )
            self._access_changed(conn, [*members, account_id])
            return True

        return await self._write(fn)

    async def any_admin(self) -> bool:
        def fn(conn: Connection) -> bool:
            return conn.execute(sa.select(sa.exists().where(t.accounts.c.is_admin))).scalar()

        return bool(await self._read(fn))

    # -- memberships ---------------------------------------------------------------------
    async def set_membership(self, org: str, user: str, role: str) -> None:
        def fn(conn: Connection) -> None:
            org_id = self._account_id(conn, org, ORG)
            user_id = self._account_id(conn, user, "user")
            if org_id is None or user_id is None:
                raise KeyError(org if org_id is None else user)
            previous = conn.execute(
                sa.delete(t.memberships)
                .where(t.memberships.c.org_id == org_id, t.memberships.c.user_id == user_id)
                .returning(t.memberships.c.role)
            ).scalar()
            conn.execute(sa.insert(t.memberships).values(org_id=org_id, user_id=user_id, role=role))
            lowered = previous is not None and ROLES.index(role) < ROLES.index(previous)
            self._access_changed(conn, [user_id] if lowered else None)

        await self._write(fn)

    async def remove_membership(self, org: str, user: str) -> bool:
        def fn(conn: Connection) -> bool:
            org_id = self._account_id(conn, org, ORG)
            user_id = self._account_id(conn, user)
            if org_id is None or user_id is None:
                return False
            result = conn.execute(
                sa.delete(t.memberships).where(
                    t.memberships.c.org_id == org_id, t.memberships.c.user_id == user_id
                )
            )
            if result.rowcount == 0:
                return False
            self._access_changed(conn, [user_id])
            return True

        return await self._write(fn)

    def _membership_query(self) -> sa.Select:
        org = t.accounts.alias("org")
        user = t.accounts.alias("member")
        return (
            sa.select(org.c.name.label("org"), user.c.name.label("user"), t.memberships.c.role)
            .join(org, org.c.id == t.memberships.c.org_id)
            .join(user, user.c.id == t.memberships.c.user_id)
        )

    async def roles_of(self, user: str) -> dict[str, str]:
        query = self._ROLES_OF

        def fn(conn: Connection) -> dict[str, str]:
            return {row.org: row.role for row in conn.execute(query, {"user": user})}

        return await self._read(fn, inline=True)

    async def members(self, org: str) -> dict[str, str]:
        def fn(conn: Connection) -> dict[str, str]:
            query = self._membership_query()
            rows = conn.execute(query.where(query.selected_columns.org == org))
            return {row.user: row.role for row in rows}

        return await self._read(fn)

    # -- access tokens -------------------------------------------------------------------
    _token_query = sa.select(
        t.access_tokens.c.id,
        t.accounts.c.name.label("account"),
        t.access_tokens.c.name,
        t.access_tokens.c.secret_hash,
        t.access_tokens.c.scope,
        t.access_tokens.c.created_at,
        t.access_tokens.c.expires_at,
        t.access_tokens.c.revoked_at,
        t.access_tokens.c.last_used_at,
    ).join(t.accounts, t.accounts.c.id == t.access_tokens.c.account_id)

    async def create_token(self, token: AccessToken) -> None:
        def fn(conn: Connection) -> None:
            account_id = self._account_id(conn, token.account)
            if account_id is None:
                raise KeyError(token.account)
            taken = conn.execute(
                sa.select(t.access_tokens.c.id).where(
                    t.access_tokens.c.account_id == account_id, t.access_tokens.c.name == token.name
                )
            ).first()
            if taken is not None:
                raise KeyError(token.name)
            conn.execute(
                sa.insert(t.access_tokens).values(
                    id=token.id,
                    account_id=account_id,
                    name=token.name,
                    secret_hash=token.secret_hash,
                    scope=token.scope,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                )
            )

        await self._write(fn)

    async def get_token(self, token_id: str) -> AccessToken | None:
        if not _storable(token_id):
            return None

        def fn(conn: Connection) -> AccessToken | None:
            row = conn.execute(self._token_query.where(t.access_tokens.c.id == token_id)).first()
            return AccessToken(*row) if row else None

        return await self._read(fn)

    async def list_tokens(self, account: str) -> list[AccessToken]:
        def fn(conn: Connection) -> list[AccessToken]:
            rows = conn.execute(
                self._token_query.where(t.accounts.c.name == account).order_by(
                    t.access_tokens.c.created_at
                )
            )
            return [AccessToken(*row) for row in rows]

        return await self._read(fn)

    async def revoke_token(self, account: str, name_or_id: str, now: float) -> bool:
        if not _storable(name_or_id):
            return False

        def fn(conn: Connection) -> bool:
            account_id = self._account_id(conn, account)
            if account_id is None:
                return False
            result = conn.execute(
                sa.update(t.access_tokens)
                .where(
                    t.access_tokens.c.account_id == account_id,
                    sa.or_(
                        t.access_tokens.c.name == name_or_id, t.access_tokens.c.id == name_or_id
                    ),
                    t.access_tokens.c.revoked_at.is_(None),
                )
                .values(revoked_at=now)
            )
            if result.rowcount == 0:
                return False
            self._access_changed(conn)
            return True

        return await self._write(fn)

    async def touch_token(self, token_id: str, now: float) -> None:
        await self._write(
            lambda conn: conn.execute(
                sa.update(t.access_tokens)
                .where(t.access_tokens.c.id == token_id)
                .values(last_used_at=now)
            )
        )

    # -- repository visibility -----------------------------------------------------------
    async def get_visibility(self, repository: str) -> str | None:
        return await self._read(
            lambda conn: conn.execute(self._GET_VISIBILITY, {"repository": repository}).scalar(),
            inline=True,
        )

    # Existence, the repository's own setting and its namespace's default, in one statement
    # whatever the answer: a private repository costs what a missing one does.
    _VISIBILITY_FACTS = sa.select(
        sa.exists().where(t.repositories.c.name == sa.bindparam("repository")),
        _GET_VISIBILITY.scalar_subquery(),
        sa.select(t.accounts.c.default_visibility)
        .where(t.accounts.c.name == sa.bindparam("namespace"))
        .scalar_subquery(),
    )

    async def visibility_facts(self, repository: str) -> tuple[bool, str | None, str | None]:
        def fn(conn: Connection) -> tuple[bool, str | None, str | None]:
            row = direct.execute(
                conn,
                self._VISIBILITY_FACTS,
                {"repository": repository, "namespace": repository.split("/", 1)[0]},
            ).first()
            assert row is not None  # one row, whatever the repository
            return bool(row[0]), row[1], row[2]

        return await self._read(fn, inline=True)

    async def set_visibility(self, repository: str, visibility: str) -> None:
        def fn(conn: Connection) -> None:
            repo_id = self.meta._repo_id(conn, repository, create=True)
            conn.execute(
                sa.delete(t.repository_settings).where(
                    t.repository_settings.c.repository_id == repo_id
                )
            )
            conn.execute(
                sa.insert(t.repository_settings).values(
                    repository_id=repo_id, visibility=visibility
                )
            )
            # Every process forgets the token grants it confirmed: one made private is closed
            # to tokens minted while it was public within a second.
            self._access_changed(conn)

        await self._write(fn)

    async def visibilities(self, repositories: list[str]) -> dict[str, str]:
        if not repositories:
            return {}

        def fn(conn: Connection) -> dict[str, str]:
            rows = conn.execute(
                sa.select(t.repositories.c.name, t.repository_settings.c.visibility)
                .join(
                    t.repository_settings,
                    t.repositories.c.id == t.repository_settings.c.repository_id,
                )
                .where(t.repositories.c.name.in_(repositories))
            )
            return {row.name: row.visibility for row in rows}

        return await self._read(fn)
