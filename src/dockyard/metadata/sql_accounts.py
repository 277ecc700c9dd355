"""The account store over the same SQL engine (and thread pool) as the metadata store."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.accounts import ORG, AccessToken, Account
from dockyard.metadata.sql import SQLMetadataStore

_ACCOUNT_FIELDS = frozenset(
    {"password_hash", "is_admin", "pull_limit", "default_visibility", "credentials_changed_at"}
)


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
        )

    @staticmethod
    def _account_id(conn: Connection, name: str, kind: str | None = None) -> int | None:
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
        self, name: str, kind: str, password_hash: str | None, is_admin: bool, now: float
    ) -> Account:
        def fn(conn: Connection) -> Account:
            if self._account_id(conn, name) is not None:
                raise KeyError(name)
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

        def fn(conn: Connection) -> bool:
            result = conn.execute(
                sa.update(t.accounts).where(t.accounts.c.name == name).values(**fields)
            )
            return result.rowcount > 0

        return await self._write(fn)

    async def delete_account(self, name: str) -> bool:
        def fn(conn: Connection) -> bool:
            account_id = self._account_id(conn, name)
            if account_id is None:
                return False
            conn.execute(
                sa.delete(t.access_tokens).where(t.access_tokens.c.account_id == account_id)
            )
            conn.execute(
                sa.delete(t.memberships).where(
                    sa.or_(
                        t.memberships.c.org_id == account_id, t.memberships.c.user_id == account_id
                    )
                )
            )
            conn.execute(sa.delete(t.accounts).where(t.accounts.c.id == account_id))
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
            conn.execute(
                sa.delete(t.memberships).where(
                    t.memberships.c.org_id == org_id, t.memberships.c.user_id == user_id
                )
            )
            conn.execute(sa.insert(t.memberships).values(org_id=org_id, user_id=user_id, role=role))

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
            return result.rowcount > 0

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
            return result.rowcount > 0

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
        return await self._read(lambda conn: conn.execute(
            self._GET_VISIBILITY, {"repository": repository}).scalar(), inline=True)

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
