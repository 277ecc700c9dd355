"""`dockyard webhook add|list|remove|deliveries`: where the registry sends its events, on the
store named by --data-dir/--config (also while `dockyard serve` runs on it: the deliverer reads
the webhooks from the store at every round)."""

from __future__ import annotations

import datetime
import json
from typing import Annotated

import typer

from dockyard.cli.admin import ConfigOpt, DataDirOpt, on_store
from dockyard.cli.exits import USAGE, fail
from dockyard.cli.folder import InitOpt

webhook_app = typer.Typer(
    help="Webhooks: every push, delete (and, with event_pulls, pull) is sent to them as an "
    "event, signed with the webhook's secret, kept until delivered and retried with backoff.",
    no_args_is_help=True,
)

IdArg = Annotated[int, typer.Argument(help="The webhook's id (see `dockyard webhook list`).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def register(app: typer.Typer) -> None:
    app.add_typer(webhook_app, name="webhook")


def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@webhook_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="Where to POST the events (http:// or https://).")],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="distribution: CNCF Distribution's envelope (application/vnd.docker."
            "distribution.events.v1+json), several events per request; cloudevents: one "
            "CloudEvents 1.0 event per request (structured JSON).",
        ),
    ] = "distribution",
    repositories: Annotated[
        str,
        typer.Option(
            "--repositories", help="Only repositories matching this pattern ('*' spans '/')."
        ),
    ] = "*",
    actions: Annotated[
        str, typer.Option("--actions", help="Comma-separated: push, delete, pull.")
    ] = "push,delete,pull",
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Add a webhook and print its secret, shown this once: the receiver checks each request's
    Dockyard-Signature with it. A URL resolving to a loopback or link-local address is refused
    unless webhook_allow_loopback is set."""
    made = on_store(
        config,
        data_dir,
        lambda r: r.events.add(url, format, repositories, actions.split(",")),
        init=init,
    )
    if as_json:
        from dockyard.service.events import webhook_json

        typer.echo(json.dumps({**webhook_json(made.webhook), "secret": made.secret}, indent=2))
        return
    typer.echo(f"webhook {made.webhook.id}: {made.webhook.url}")
    typer.echo(f"secret (shown once): {made.secret}")


@webhook_app.command("list")
def list_command(
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """The webhooks, with where their delivery stands (never their secrets)."""
    from dockyard.service.events import webhook_json

    hooks = on_store(config, data_dir, lambda r: r.events.all(), init=init)
    if as_json:
        typer.echo(json.dumps([webhook_json(h) for h in hooks], indent=2))
        return
    for h in hooks:
        status = h.last_status if h.last_status is not None else "-"
        typer.echo(
            f"{h.id}\t{h.url}\t{h.format}\t{h.repositories}\t{','.join(h.actions)}\t"
            f"pending {h.pending}\tdelivered {h.delivered}\tlast {status} at "
            f"{_when(h.last_attempt_at)}" + (f"\terror: {h.last_error}" if h.last_error else "")
        )


@webhook_app.command("remove")
def remove(
    hook_id: IdArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Remove a webhook and drop the events not delivered to it yet."""
    if not on_store(config, data_dir, lambda r: r.events.remove(hook_id), init=init):
        raise fail(f"no webhook {hook_id}", USAGE)
    typer.echo(f"webhook {hook_id} removed")


@webhook_app.command("deliveries")
def deliveries(
    hook_id: IdArg,
    as_json: JsonOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """The webhook's latest delivery attempts, newest first: when, how many events from which,
    the attempt's number, the HTTP status and the error."""
    from dockyard.service.events import delivery_json

    log = on_store(config, data_dir, lambda r: r.events.deliveries(hook_id), init=init)
    if as_json:
        typer.echo(json.dumps([delivery_json(d) for d in log], indent=2))
        return
    for d in log:
        status = d.status if d.status is not None else "-"
        typer.echo(
            f"{_when(d.at)}\t{d.first_event}\t{d.events} event(s)\tattempt {d.attempt}\t"
            f"{status}" + (f"\t{d.error}" if d.error else "")
        )
