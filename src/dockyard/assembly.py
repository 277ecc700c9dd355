"""Assembling a registry from its settings: the stores and services, the schema, and with
accounts on, the token signing key and the first administrator.

`dockyard serve` (before its workers start), `dockyard db upgrade`, the admin commands and the
tests get their registry from `open_registry`; the server's one-time steps are `prepare`. A
worker builds its own with `build_registry`, once `prepare` has made everything. Both hand the
registry its pull-through cache (`dockyard.proxy`) when the settings name upstreams: the
service layer never imports the cache, which speaks HTTP to other registries.

It sits above `service` and `auth`, whose pieces it puts together, and below `api` and `cli`,
which it never imports: what to print, and the process-wide umask, stay with the entry points.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING

from dockyard.config import Settings
from dockyard.core import file_lock
from dockyard.service.registry import METADATA_FILE, Registry, migrate, open_stores

if TYPE_CHECKING:
    from dockyard.service.events import Sender
    from dockyard.service.migration import MigrationReport


class NoRegistry(Exception):
    """The settings name a folder or database that holds no registry, and none was to be
    created: a mistyped --data-dir must not become a new, empty registry."""


def sqlite_missing(settings: Settings) -> bool:
    """The settings name a data folder without the SQLite metadata (and no shared database)."""
    return not settings.metadata and not (settings.data_dir / METADATA_FILE).is_file()


async def _has_shared_schema(registry: Registry) -> bool:
    return await registry.meta.has_schema()


def registry_exists(settings: Settings) -> bool:
    """Whether the settings name a registry: a data folder with its SQLite metadata, or a
    shared database that was migrated at least once."""
    if not settings.metadata:
        return not sqlite_missing(settings)
    from dockyard.metadata.sql import SQLMetadataStore

    async def probe() -> bool:
        meta = SQLMetadataStore.open_postgres(settings.metadata or "")
        try:
            return await meta.has_schema()
        finally:
            await meta.close()

    return asyncio.run(probe())


def build_registry(settings: Settings, *, migrate: bool = True) -> Registry:
    """The registry the settings name, with its pull-through cache when they configure one
    (its HTTP client is imported only then: it costs a server process tens of MiB)."""
    registry = Registry(settings, *open_stores(settings, migrate=migrate))
    registry.events.sender_factory = lambda: _webhook_sender(settings)
    if settings.proxies:
        from dockyard.proxy.service import ProxyService

        registry.stand_in(
            ProxyService(
                settings,
                registry.blob_store,
                registry.meta,
                registry.manifests,
                registry.counters,
                registry.content_lock,
            )
        )
    return registry


def modules_for(settings: Settings) -> list[str]:
    """The modules `build_registry` loads for these settings beyond what importing the
    service layer brings: the database's dialect (found by its URL when the engine is made),
    the S3 store, the pull-through cache and its HTTP client. A serving process imports them
    before it forks its workers, which then share them instead of each loading its own
    before it can answer."""
    if settings.metadata:
        # The driver itself loads at the first connection, the content lock with the store.
        names = [
            "dockyard.metadata.postgres_runner",
            "dockyard.metadata.advisory_lock",
            "sqlalchemy.ext.asyncio",
            "sqlalchemy.dialects.postgresql.asyncpg",
            "asyncpg",
        ]
    else:
        names = ["sqlalchemy.dialects.sqlite.pysqlite"]
    if settings.storage and settings.storage.startswith("s3://"):
        # Its multipart client makes an HTTP client (transport, certificates) when opened.
        names += ["dockyard.storage.s3", "httpcore", "certifi"]
    if settings.proxies:
        names.append("dockyard.proxy.service")
    return names


def _webhook_sender(settings: Settings) -> Sender:
    """The HTTP sender of webhook requests, imported when a process first delivers."""
    from dockyard.notify.sender import HttpSender

    return HttpSender(settings.webhook_timeout_seconds)


@contextlib.contextmanager
def _creating(settings: Settings, create: bool) -> Iterator[None]:
    """While a registry may be being made in the folder: one process at a time opens it, so
    that concurrent `--init` commands do not race to create the same SQLite schema (a race
    SQLite answers with 'database is locked' instead of waiting). A lock on the folder itself,
    so that nothing else is left in it.

    Taken whenever `create` is asked, not only when the file is missing: a process that finds
    the file another has just created must still wait until that one has finished making it,
    before it looks at its schema (`dockyard.metadata.migrate.at_head`)."""
    if not create or settings.metadata:
        yield
        return
    from dockyard.storage.private import keep_private

    keep_private(settings.data_dir)
    fd = os.open(settings.data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        file_lock.lock(fd)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.asynccontextmanager
async def open_registry(settings: Settings, *, create: bool = False) -> AsyncIterator[Registry]:
    """The registry the settings name, closed when the block ends.

    One that does not exist raises `NoRegistry`, unless `create`: then it is made, and a
    shared database's schema brought up to date (SQLite's is whenever it is opened). Without
    `create` a shared schema is left as it is, for the replicas that use it."""
    if not create and sqlite_missing(settings):
        raise NoRegistry(settings.data_dir)
    with _creating(settings, create):  # opening SQLite creates its schema
        registry = build_registry(settings)
    try:
        if settings.metadata:
            if not create and not await _has_shared_schema(registry):
                raise NoRegistry("the metadata database holds no registry")
            if create:
                await migrate(registry.meta)
        yield registry
    finally:
        await registry.close()


async def prepare(settings: Settings, admin_password: str | None) -> str | None:
    """What a server needs before any worker starts: the registry (made if need be), its
    schema up to date, and with accounts on the token signing key and a first administrator.
    Returns the password generated for that administrator, to be shown once; None when there
    was one already or `admin_password` was given."""
    async with open_registry(settings, create=True) as registry:
        if not settings.auth_enabled:
            return None
        from dockyard.auth.setup import signing_key

        await signing_key(registry)
        return await registry.accounts.bootstrap_admin(admin_password)


async def copy_registry(
    source: Settings,
    target: Settings,
    *,
    blobs: bool,
    metadata: bool,
    copied: Callable[[str, int], None],
) -> tuple[MigrationReport | None, dict[str, int] | None]:
    """Copy the registry `source` names to the backends `target` names (`dockyard migrate`):
    its blobs when `blobs`, told to `copied` one by one, then its metadata rows when
    `metadata`, into a schema made for them. Raises `NoRegistry` when the source has none."""
    from dockyard.service.migration import copy_blobs, copy_metadata

    if sqlite_missing(source):
        raise NoRegistry(source.data_dir)
    source_blobs, source_meta = open_stores(source)
    target_blobs, target_meta = open_stores(target)
    try:
        if source.metadata and not await source_meta.has_schema():
            raise NoRegistry("the metadata database holds no registry")
        digests = await source_meta.all_blob_digests()
        report = None
        if blobs:
            report = await copy_blobs(source_blobs, target_blobs, digests, copied)
        rows = None
        if metadata:
            await migrate(target_meta)
            rows = await copy_metadata(source_meta, target_meta)
        return report, rows
    finally:
        await source_meta.close()
        await target_meta.close()
