"""Running the server: settings checked, schema migrated, then the HTTP server started."""

from __future__ import annotations

import json
import logging
import os

from dockyard.api.app import SETTINGS_ENV
from dockyard.config import Settings
from dockyard.service.registry import open_stores

log = logging.getLogger("dockyard")


def prepare(settings: Settings) -> None:
    """Create the data folder and bring the schema up to date before any worker starts."""
    import asyncio

    _blobs, meta = open_stores(settings)
    asyncio.run(meta.close())


def worker_count(settings: Settings) -> int:
    return settings.workers or max(1, os.cpu_count() or 1)


def run(settings: Settings) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    prepare(settings)
    os.environ[SETTINGS_ENV] = json.dumps(settings.model_dump(mode="json"))
    workers = worker_count(settings)
    log.info(
        "dockyard serving http://%s with %d worker(s), data in %s",
        settings.listen,
        workers,
        settings.data_dir.resolve(),
    )
    server = Granian(
        target="dockyard.api.app:app_from_environment",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=workers,
        loop=Loops.auto,
        log_access=False,
        log_dictconfig=logging_config(),
        respawn_failed_workers=True,
    )
    server.serve()


def logging_config() -> dict:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["console"], "level": "INFO"},
        "loggers": {
            "_granian": {"level": "WARNING"},
            "granian": {"level": "INFO"},
            "alembic": {"level": "WARNING"},
        },
    }
