"""Schema migrations with Alembic, run programmatically (`dockyard db upgrade`, and at start).

Alembic is loaded only when there is something to migrate: a command on a SQLite folder whose
schema is current (`at_head`) starts without it, a third of `dockyard gc`'s start-up before.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"

_REVISION = re.compile(r"^revision(?:\s*:[^=]*)?\s*=\s*(.+)$", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision(?:\s*:[^=]*)?\s*=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"[\"']([^\"']+)[\"']")


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    if revision == "head" and at_head(engine):
        return
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def script_head() -> str | None:
    """The one revision no other revises, read from the revision files as text; None when
    a file does not say plainly what it is (then Alembic decides)."""
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


def at_head(engine: Engine) -> bool:
    """Whether the database is at the one head revision (nothing to migrate)."""
    head = script_head()
    if head is None:
        return False
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return False
        versions = list(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
    return versions == [head]


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
