"""Access tokens: made, looked up, listed, revoked and marked used. Only their hashes are kept."""

from __future__ import annotations

from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import schema as t
from dockyard.metadata.access import access_changed, account_id, storable
from dockyard.metadata.accounts import AccessToken
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.audit import audited
from dockyard.metadata.base import AuditOf

TOKENS = sa.select(
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


def create_token(conn: Connection, token: AccessToken) -> None:
    owner = account_id(conn, token.account)
    if owner is None:
        raise KeyError(token.account)
    taken = conn.execute(
        sa.select(t.access_tokens.c.id).where(
            t.access_tokens.c.account_id == owner, t.access_tokens.c.name == token.name
        )
    ).first()
    if taken is not None:
        raise KeyError(token.name)
    conn.execute(
        sa.insert(t.access_tokens).values(
            id=token.id,
            account_id=owner,
            name=token.name,
            secret_hash=token.secret_hash,
            scope=token.scope,
            created_at=token.created_at,
            expires_at=token.expires_at,
        )
    )


def get_token(conn: Connection, token_id: str) -> AccessToken | None:
    row = conn.execute(TOKENS.where(t.access_tokens.c.id == token_id)).first()
    return AccessToken(*row) if row else None


def list_tokens(conn: Connection, account: str) -> list[AccessToken]:
    rows = conn.execute(
        TOKENS.where(t.accounts.c.name == account).order_by(t.access_tokens.c.created_at)
    )
    return [AccessToken(*row) for row in rows]


def revoke_token(conn: Connection, account: str, name_or_id: str, now: float) -> bool:
    owner = account_id(conn, account)
    if owner is None:
        return False
    result = conn.execute(
        sa.update(t.access_tokens)
        .where(
            t.access_tokens.c.account_id == owner,
            sa.or_(t.access_tokens.c.name == name_or_id, t.access_tokens.c.id == name_or_id),
            t.access_tokens.c.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    if result.rowcount == 0:
        return False
    access_changed(conn)
    return True


def touch_token(conn: Connection, token_id: str, now: float) -> None:
    conn.execute(
        sa.update(t.access_tokens).where(t.access_tokens.c.id == token_id).values(last_used_at=now)
    )


class SQLAccessTokens(SQLAggregate):
    async def create_token(self, token: AccessToken, *, audit: AuditOf = None) -> None:
        await self.runner.write(audited(partial(create_token, token=token), audit))

    async def get_token(self, token_id: str) -> AccessToken | None:
        if not storable(token_id):
            return None
        # One lookup by key, asked at every token request made with an access token: cheaper
        # on the event loop than the hop to a thread and back (as accounts are looked up).
        return await self.runner.read(
            partial(get_token, token_id=token_id), inline=True, key=("token", token_id)
        )

    async def list_tokens(self, account: str) -> list[AccessToken]:
        return await self.runner.read(partial(list_tokens, account=account))

    async def revoke_token(
        self, account: str, name_or_id: str, now: float, *, audit: AuditOf = None
    ) -> bool:
        if not storable(name_or_id):
            return False
        return await self.runner.write(
            audited(partial(revoke_token, account=account, name_or_id=name_or_id, now=now), audit)
        )

    async def touch_token(self, token_id: str, now: float) -> None:
        await self.runner.write(partial(touch_token, token_id=token_id, now=now))
