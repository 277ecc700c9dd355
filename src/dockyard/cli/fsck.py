"""`dockyard fsck`: check (and with --repair, quarantine) what the data folder stores."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.admin import ConfigOpt, DataDirOpt, on_store
from dockyard.cli.exits import FAILED
from dockyard.cli.folder import InitOpt

if TYPE_CHECKING:
    from dockyard.service.fsck import FsckReport
    from dockyard.service.registry import Registry


def register(app: typer.Typer) -> None:
    app.command("fsck")(fsck_command)


def fsck_command(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Move blobs whose bytes do not hash to their digest into the store's "
            "quarantine/ (kept for inspection) and drop their records, so they are answered "
            "BLOB_UNKNOWN until pushed again.",
        ),
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Hash every stored blob again and follow every repository link, manifest reference and
    tag; list what is wrong and exit 1 if anything is."""

    async def action(registry: Registry) -> FsckReport:
        from dockyard.service.fsck import FsckService

        service = FsckService(
            registry.blob_store,
            registry.meta,
            registry.content_lock,
            [u.name for u in registry.settings.proxies],
        )
        return await service.run(repair=repair)

    report = on_store(config, data_dir, action, init=init)
    for problem in report.problems:
        typer.echo(f"{problem.kind}\t{problem.where}\t{problem.digest}\t{problem.detail}")
    for digest, where in report.quarantined.items():
        typer.echo(f"quarantined\t{digest}\t{where}")
    typer.echo(
        f"{report.blobs_checked} blobs checked, {len(report.bad_blobs)} bad blobs, "
        f"{len(report.problems)} problems"
        + (f", {len(report.quarantined)} quarantined" if repair else "")
    )
    if not report.clean:
        raise typer.Exit(FAILED)
