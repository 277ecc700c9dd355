"""`dockyard doctor`: one line per check of what a registry needs to serve, and an exit code
a monitoring job can act on."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from dockyard.cli.admin import ConfigOpt, DataDirOpt
from dockyard.cli.exits import FAILED, USAGE


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_command)


def doctor_command(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    min_free: Annotated[
        int,
        typer.Option(
            "--min-free-mib",
            min=0,
            help="Free space the data folder must have, in MiB (default 1024).",
        ),
    ] = 1024,
    cert_days: Annotated[
        int,
        typer.Option(
            "--cert-warn-days",
            min=0,
            help="Warn when the TLS certificate expires within this many days (default 14).",
        ),
    ] = 14,
) -> None:
    """Check the configuration, that the storage takes writes and has free space, that the
    metadata database is reachable and migrated to this version's schema, that the clock
    agrees with the database's (tokens depend on it), and that the TLS certificate matches its
    key and is not expired or expiring soon.

    One line per check: ok, warn or FAIL, the check's name and what was found; secrets are
    never shown. Exit 0 when nothing failed (warnings included), 1 when a check failed, 2 when
    the configuration itself is invalid. Nothing is created or migrated; a small blob is
    written to the storage and removed."""
    from dockyard.config import ConfigError, check_security, load_settings, scrub
    from dockyard.service.doctor import Thresholds, examine

    try:
        settings = load_settings(config, {"data_dir": data_dir})
        check_security(settings)
    except ConfigError as exc:
        _line("fail", "config", str(exc))
        raise typer.Exit(USAGE) from None
    _line("ok", "config", f"{config or 'the defaults and DOCKYARD_* variables'}: valid")
    thresholds = Thresholds(min_free_bytes=min_free << 20, cert_warn_days=cert_days)
    findings = asyncio.run(examine(settings, thresholds))
    for finding in findings:
        # A driver's message may quote the database URL, password and all.
        _line(finding.status, finding.check, scrub(finding.detail, settings))
    if any(f.status == "fail" for f in findings):
        raise typer.Exit(FAILED)


def _line(status: str, check: str, detail: str) -> None:
    shown = {"ok": "ok", "warn": "warn", "fail": "FAIL"}[status]
    typer.echo(f"{shown:<5} {check:<9} {detail}")
