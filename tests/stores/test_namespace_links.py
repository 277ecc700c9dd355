"""Revision 0016 on PostgreSQL: a namespace's row for a digest stands while anything of the
namespace holds it, so pushes of content the namespace already holds write no shared row;
the usage still counts each digest once, and a downgrade gives 0009's counts back."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from dockyard.metadata.migrate import MIGRATIONS, upgrade_async
from dockyard.metadata.sql import postgres_url

NS = "acme"


async def _scan(conn) -> tuple[int, list[tuple[str, int]]]:  # type: ignore[no-untyped-def]
    usage = await conn.scalar(sa.text("SELECT COALESCE(SUM(bytes), 0) FROM namespace_usage"))
    rows = await conn.execute(sa.text("SELECT digest, links FROM namespace_blobs ORDER BY digest"))
    return int(usage), [(r[0], int(r[1])) for r in rows]


def _downgrade_on(connection, revision: str) -> None:  # type: ignore[no-untyped-def]
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def test_usage_counts_each_digest_once_across_links_and_a_downgrade(postgres) -> None:
    url = postgres_url(postgres.create_database())

    async def main() -> None:
        engine = create_async_engine(url)
        try:
            await upgrade_async(engine)
            async with engine.connect() as conn:
                await conn.execute(
                    sa.text(
                        "INSERT INTO repositories (id, name, created_at) VALUES "
                        "(1, 'acme/a', 0), (2, 'acme/b', 0), (3, 'other/c', 0)"
                    )
                )
                await conn.execute(
                    sa.text(
                        "INSERT INTO blobs (digest, size, created_at) VALUES ('sha256:x1', 10, 0)"
                    )
                )
                for repo in (1, 2, 3):
                    await conn.execute(
                        sa.text(
                            "INSERT INTO repository_blobs (repository_id, digest, created_at) "
                            "VALUES (:r, 'sha256:x1', 0)"
                        ),
                        {"r": repo},
                    )
                await conn.commit()
                # Two namespaces hold it: counted once in each.
                assert await _scan(conn) == (20, [("sha256:x1", 1), ("sha256:x1", 1)])

                await conn.run_sync(_downgrade_on, "0015")
                await conn.commit()
                usage, rows = await _scan(conn)
                assert usage == 20 and sorted(rows) == [("sha256:x1", 1), ("sha256:x1", 2)]

            await upgrade_async(engine)
            async with engine.connect() as conn:
                # One of acme's two links goes: acme still holds it.
                await conn.execute(sa.text("DELETE FROM repository_blobs WHERE repository_id = 1"))
                await conn.commit()
                assert (await _scan(conn))[0] == 20
                # The last one goes: acme's bytes go; other's stay.
                await conn.execute(sa.text("DELETE FROM repository_blobs WHERE repository_id = 2"))
                await conn.commit()
                assert await _scan(conn) == (10, [("sha256:x1", 1)])
        finally:
            await engine.dispose()

    asyncio.run(main())
