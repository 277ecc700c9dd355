"""Which registry an admin command works on.

A mistyped --data-dir, or a command run from another directory, used to create a new, empty
registry and report success there. Admin commands now say which registry they use and refuse
one that does not exist unless told to create it (--init); `serve` still creates a fresh folder.
"""

from __future__ import annotations

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


def absent_message(settings: Settings) -> str:
    if settings.metadata:
        what = f"the metadata database {redact_url(settings.metadata)} holds no registry"
    else:
        what = f"{settings.data_dir.resolve()} holds no registry (no metadata.db)"
    return (
        f"{what}: give the registry's folder with --data-dir (default ./dockyard-data, "
        "also DOCKYARD_DATA_DIR) or --config, or pass --init to create a new one there"
    )
