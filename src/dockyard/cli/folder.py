"""Which registry an admin command works on.

A mistyped --data-dir, or a command run from another directory, used to create a new, empty
registry and report success there. Admin commands now say which registry they use and refuse
one that does not exist unless told to create it (--init); `serve` still creates a fresh folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from typing import Annotated

import typer

from dockyard.cli.exits import say
from dockyard.config import Settings, redact_url

InitOpt = Annotated[
    bool,
    typer.Option(
        "--init",
        help="Create a new, empty registry if the data folder (or the --config's metadata "
        "database) holds none; without it such a folder is refused, so that a mistyped "
        "--data-dir does not become a new registry.",
    ),
]


def describe(settings: Settings) -> str:
    where = f"the registry in {settings.data_dir.resolve()}"
    if settings.metadata:
        where += f" (metadata in {redact_url(settings.metadata)})"
    return where


def announce(settings: Settings) -> None:
    """One line on stderr, so that stdout stays what scripts read (a token's secret)."""
    say(f"using {describe(settings)}")


def sqlite_missing(settings: Settings) -> bool:
    from dockyard.service.registry import METADATA_FILE

    return not settings.metadata and not (settings.data_dir / METADATA_FILE).is_file()


def absent_message(settings: Settings) -> str:
    if settings.metadata:
        what = f"the metadata database {redact_url(settings.metadata)} holds no registry"
    else:
        what = f"{settings.data_dir.resolve()} holds no registry (no metadata.db)"
    return (
        f"{what}: give the registry's folder with --data-dir (default ./dockyard-data, "
        "also DOCKYARD_DATA_DIR) or --config, or pass --init to create a new one there"
    )


@contextlib.contextmanager
def creating(settings: Settings, init: bool) -> Iterator[None]:
    """While a new registry is being made in the folder: one command at a time makes it, so
    that concurrent `--init` commands do not race to create the same SQLite schema (a race
    SQLite answers with 'database is locked' instead of waiting). A lock on the folder itself,
    so that nothing else is left in it."""
    if not (init and sqlite_missing(settings)):
        yield
        return
    from dockyard.storage.private import keep_private

    keep_private(settings.data_dir)
    fd = os.open(settings.data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
