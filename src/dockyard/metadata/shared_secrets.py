"""Secrets every replica must agree on (the token signing key): the first one made wins."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.statements import insert_ignore


def secret(conn: Connection, name: str, make: Callable[[], str]) -> str:
    insert_ignore(conn, t.secrets, name=name, value=make(), created_at=time.time())
    value: str = conn.execute(
        sa.select(t.secrets.c.value).where(t.secrets.c.name == name)
    ).scalar_one()
    return value


class SQLSecrets(SQLAggregate):
    async def secret(self, name: str, make: Callable[[], str]) -> str:
        """The secret called `name`; the first caller's `make()` wins any race."""
        return await self.runner.write(partial(secret, name=name, make=make))
