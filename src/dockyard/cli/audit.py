"""`dockyard audit`: read the audit log on the store named by --data-dir/--config, newest
first (who did what to which object, and when)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.admin import ConfigOpt, DataDirOpt, on_store
from dockyard.cli.exits import USAGE, fail

if TYPE_CHECKING:
    from dockyard.metadata.base import AuditEntry
    from dockyard.service.registry import Registry

TIME_HELP = (
    "seconds since the epoch, an ISO 8601 date or time (UTC unless an offset is given), or a "
    "duration back from now: 90m, 12h, 7d"
)


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)


def audit(
    since: Annotated[
        str | None, typer.Option("--since", help=f"Records from this moment on: {TIME_HELP}.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help=f"Records before this moment: {TIME_HELP}.")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", help="Only what this account did.")] = None,
    repo: Annotated[
        str | None, typer.Option("--repo", help="Only what was done in this repository.")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", help="Only this action, e.g. manifest.push, login.failed."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, help="At most this many records (default 1000).")
    ] = 1000,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line instead of a table.")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Show the audit log, newest first: pushes, deletes, visibility and policy changes,
    accounts, memberships and access tokens, and failed logins, with who (account, token
    name, address) and when. Records are kept for audit_retention_days (default 90). Never
    shows a password or token, only names. Also GET /api/v1/audit for administrators."""
    from dockyard.metadata.base import AuditQuery
    from dockyard.service.audit import MAX_PAGE, parse_time

    try:
        bounds = [parse_time(t) if t is not None else None for t in (since, until)]
    except ValueError as exc:
        raise fail(str(exc), USAGE) from exc

    async def read(registry: Registry) -> list[AuditEntry]:
        found: list[AuditEntry] = []
        before = None
        while len(found) < limit:
            wanted = min(MAX_PAGE, limit - len(found))
            page = await registry.audit.entries(
                AuditQuery(
                    since=bounds[0],
                    until=bounds[1],
                    account=user,
                    repository=repo,
                    action=action,
                    before=before,
                    limit=wanted,
                )
            )
            found += page
            if len(page) < wanted:
                break
            before = page[-1].id
        return found

    _print(on_store(config, data_dir, read), as_json)


def _print(found: list[AuditEntry], as_json: bool) -> None:
    from dockyard.service.audit import entry_json

    for entry in found:
        shown = entry_json(entry)
        if as_json:
            typer.echo(json.dumps(shown, sort_keys=True))
            continue
        who = entry.account or "-"
        if entry.token:
            who += f" (token {entry.token})"
        detail = f" {json.dumps(entry.detail, sort_keys=True)}" if entry.detail else ""
        typer.echo(
            f"{shown['time']}  {entry.action:<22} {entry.object}  by {who}"
            f" from {entry.address or '-'}{detail}"
        )
