"""What every change to who may do what shares: accounts found by name, and the access version.

Every change to accounts, memberships, access tokens or visibility moves the "access" version on
in its transaction: every server process drops what it remembers of sessions when it sees the
version move (see `auth.gate`).
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.statements import bump_version

ACCESS_VERSION = "access"


def storable(text: str) -> bool:
    """Whether a name could be stored at all: PostgreSQL refuses text holding a NUL character
    (an error, where SQLite stores anything), so a name with one is nobody's."""
    return "\x00" not in text


def access_changed(conn: Connection, shrunk: list[int] | None = None) -> None:
    """In the transaction of every change to accounts, memberships or tokens. `shrunk`:
    accounts whose rights just shrank, whose access tokens minted before are refused."""
    bump_version(conn, t.listing_versions, "name", ACCESS_VERSION)
    if shrunk:
        conn.execute(
            sa.update(t.accounts)
            .where(t.accounts.c.id.in_(shrunk))
            .values(grants_changed_at=time.time())
        )


def account_id(conn: Connection, name: str, kind: str | None = None) -> int | None:
    if not storable(name):
        return None
    query = sa.select(t.accounts.c.id).where(t.accounts.c.name == name)
    if kind is not None:
        query = query.where(t.accounts.c.kind == kind)
    found: int | None = conn.execute(query).scalar()
    return found


# Lookups made while authorizing requests: built once, run on the event loop (see
# `SQLiteRunner.read`).
ACCESS_VERSION_ROW = sa.select(t.listing_versions.c.version).where(
    t.listing_versions.c.name == ACCESS_VERSION
)


def access_version(conn: Connection) -> int:
    version: int | None = direct.execute(conn, ACCESS_VERSION_ROW, {}).scalar()
    return version or 0
