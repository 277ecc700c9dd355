"""Schema migrations with Alembic, run programmatically (`dockyard db upgrade`, and at start).

Opening a SQLite folder first asks, read-only, whether its schema is at the newest revision
(`at_head`); only when it is not, or when the question cannot be answered at once (a database
being created or migrated by another process), does Alembic load and decide. Alembic and what it
imports were most of a server's start on a current folder. The look itself needs neither
Alembic nor SQLAlchemy, so that `dockyard serve` can tell a folder needs no preparing
(`cli.serve.needs_preparing`) before it has imported either.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"

# The SQLite database in a data folder (without a shared database).
METADATA_FILE = "metadata.db"

# A revision file's own id and the one it revises, as Alembic's template writes them.
_REVISION = re.compile(r"^revision(?:\s*:[^=]*)?\s*=\s*(.+)$", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision(?:\s*:[^=]*)?\s*=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")

# How long the read-only look waits for a writer before leaving the decision to Alembic.
_LOOK_SECONDS = 0.2


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring a database to `revision`. A SQLite file already at the head is left alone without
    loading Alembic; anything else goes through Alembic, as it always did."""
    if revision == "head" and at_head(engine):
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def script_head() -> str | None:
    """The one revision no other revises, read from the revision files as text; None when a
    file does not say plainly what it is or there is not exactly one head (Alembic decides)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text()
        found = _REVISION.search(text)
        down = _DOWN_REVISION.search(text)
        if found is None or down is None:
            return None
        revisions.update(_QUOTED.findall(found.group(1)))
        revised.update(_QUOTED.findall(down.group(1)))
    heads = revisions - revised
    return heads.pop() if len(heads) == 1 else None


def sqlite_revisions(path: Path) -> list[str] | None:
    """The revisions a SQLite file records, read through a read-only connection of its own
    (it takes no write lock and sets no pragma, so it cannot stand in the way of a process
    creating or migrating the file); None when the file cannot tell at once: missing, not
    migrated yet, or locked."""
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=_LOOK_SECONDS
        )
    except sqlite3.Error:
        return None
    try:
        rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return [str(row[0]) for row in rows]


def at_head(engine: Engine) -> bool:
    """Whether `engine` is a SQLite file at the one head revision (nothing to migrate)."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return False
    return sqlite_at_head(Path(engine.url.database))


def sqlite_at_head(path: Path) -> bool:
    """Whether the SQLite file at `path` records the one head revision, read without
    SQLAlchemy or Alembic (this module imports neither until it migrates)."""
    head = script_head()
    return head is not None and sqlite_revisions(path) == [head]


async def upgrade_async(engine: AsyncEngine, revision: str = "head") -> None:
    """The same migrations over an async engine (PostgreSQL with asyncpg)."""
    async with engine.connect() as conn:
        await conn.run_sync(_upgrade_on, revision)
        await conn.commit()


def _upgrade_on(connection: Connection, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def has_schema(engine: AsyncEngine) -> bool:
    """Whether a shared database was ever migrated (it has Alembic's revision table), so that
    an admin command can tell a registry from an empty or mistyped database."""
    from sqlalchemy import inspect

    async with engine.connect() as conn:
        return await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version"))
