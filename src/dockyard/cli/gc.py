"""`dockyard gc`: reclaim (or, with --dry-run, list) what nothing references any more."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.admin import ConfigOpt, DataDirOpt, on_store
from dockyard.cli.folder import InitOpt

if TYPE_CHECKING:
    from dockyard.service.gc import GcReport
    from dockyard.service.registry import Registry


def register(app: typer.Typer) -> None:
    app.command("gc")(gc_command)


def gc_command(
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Only say what would be reclaimed; change nothing."),
    ] = False,
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Grace delay 0: reclaim at once whatever nothing references, however recent "
            "(safe while the registry serves: a push racing it keeps its content or is "
            "refused).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Collect garbage now: blobs no manifest, recent link or cached repository references
    (after the gc_grace_seconds delay), untagged manifests if gc_untagged_manifests is on,
    abandoned uploads, and bytes left without a record. Safe while `dockyard serve` runs on
    the same data folder or database."""

    async def action(registry: Registry) -> GcReport:
        return await registry.gc.collect(
            dry_run=dry_run, grace_seconds=0 if now else None, strays=True
        )

    report = on_store(config, data_dir, action, init=init)
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
        return
    for digest in report.digests:
        typer.echo(f"blob\t{digest}")
    for manifest in report.untagged:
        typer.echo(f"manifest\t{manifest}")
    verb = "would reclaim" if dry_run else "reclaimed"
    typer.echo(
        f"{verb} {report.blobs} blob(s), {report.bytes} bytes; {report.links} unused "
        f"link(s), {report.manifests} untagged manifest(s), {report.uploads} abandoned "
        f"upload(s), {report.strays} stray file(s) (grace {report.grace_seconds:g} s)"
    )
