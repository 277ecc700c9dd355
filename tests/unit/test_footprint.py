"""What a default server process loads: every module is memory in each of its processes.

A server on filesystem + SQLite without accounts needs neither the migration code (run in a
short-lived child), nor SQLAlchemy's asyncio extension (PostgreSQL only), nor the token code,
nor the HTTP client of the pull-through cache, nor Redis; nor, until it renders a README, the
Markdown parser. Every module is also time before the server's first answer.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

PROBE = textwrap.dedent("""
    import asyncio, json, sys
    from dockyard.cli.serve import prepare_apart, share_with_workers
    from dockyard.api.app import create_app
    from dockyard.config import Settings

    settings = Settings(data_dir=sys.argv[1])
    prepare_apart(settings)          # what the serving parent does before forking workers
    share_with_workers(settings)
    app = create_app(settings)       # what each worker does

    async def lifespan():
        queue = asyncio.Queue()
        await queue.put({"type": "lifespan.startup"})
        started = asyncio.Event()

        async def send(message):
            assert message["type"].endswith(".complete"), message
            started.set()

        task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                        "state": {}}, queue.get, send))
        await started.wait()
        await queue.put({"type": "lifespan.shutdown"})
        await task

    asyncio.run(lifespan())
    print(json.dumps(sorted(m for m, v in sys.modules.items() if v is not None)))
""")

NOT_LOADED = (
    "alembic",
    "sqlalchemy.ext.asyncio",
    "greenlet",
    "asyncpg",
    "jwt",
    "cryptography",
    "httpx",
    "httpcore",
    "redis",
    "typer",
    "rich",
    # Loaded when first used, not at start: a README's first rendering, a PostgreSQL
    # database, a configuration file.
    "markdown_it",
    "sqlalchemy.dialects.postgresql",
    "yaml",
)


def test_a_default_server_process_loads_only_what_it_uses(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "sqlalchemy" in loaded and "starlette" in loaded  # the probe did load the server
    assert (tmp_path / "data").exists(), "the child did prepare the data folder"
    unexpected = sorted(
        m
        for m in loaded
        if m.split(".")[0] in NOT_LOADED or any(m == n or m.startswith(n + ".") for n in NOT_LOADED)
    )
    assert unexpected == []
