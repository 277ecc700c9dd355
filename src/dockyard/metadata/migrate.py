"""Schema migrations with Alembic, run programmatically (`dockyard db upgrade`, and at start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


async def upgrade_async(engine: AsyncEngine, revision: str = "head") -> None:
    """The same migrations over an async engine (PostgreSQL with asyncpg)."""
    async with engine.connect() as conn:
        await conn.run_sync(_upgrade_on, revision)
        await conn.commit()


def _upgrade_on(connection: Connection, revision: str) -> None:
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
