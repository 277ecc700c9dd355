"""What `dockyard doctor` asks the metadata database: the revision its schema is at, the
newest revision this version of Dockyard knows, and the database's own clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection


@dataclass(frozen=True, slots=True)
class SchemaState:
    revision: str | None  # None: the database was never migrated
    head: str  # the newest revision of this version's migrations
    database_time: dt.datetime  # the database server's clock, in UTC


def head_revision() -> str:
    """The newest revision among the migration scripts (read from the files, not run)."""
    from alembic.script import ScriptDirectory

    from dockyard.metadata.migrate import MIGRATIONS

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    if head is None:  # the package ships its migrations; none means a broken install
        raise RuntimeError(f"no migration scripts in {MIGRATIONS}")
    return head


def schema_state(conn: Connection) -> SchemaState:
    """Run in a read transaction of the store's runner."""
    head = head_revision()  # first: reading the scripts takes a moment the clock must not see
    revision = None
    if sa.inspect(conn).has_table("alembic_version"):
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    if conn.dialect.name == "postgresql":
        # clock_timestamp(), not now(): now() is the start of the transaction.
        now = conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one()
    else:
        # SQLite has no clock of its own but the machine's; asked all the same, so that the
        # check reads the same on both databases.
        text = conn.execute(sa.text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
        now = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return SchemaState(revision=revision, head=head, database_time=now)
