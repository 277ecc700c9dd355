"""`dockyard policy …`: rules an owner sets on a namespace or repository, on the store named
by --data-dir/--config (also while `dockyard serve` runs on it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.admin import ConfigOpt, DataDirOpt, on_store
from dockyard.cli.exits import USAGE, fail
from dockyard.cli.folder import InitOpt

if TYPE_CHECKING:
    from dockyard.service.registry import Registry

policy_app = typer.Typer(help="Rules on namespaces and repositories.", no_args_is_help=True)
immutable_app = typer.Typer(
    help="Immutable tags: tags matching a pattern, once pushed, never move and are never "
    "deleted. A pattern is a tag with '*' for any characters (v*, release-*). Signature and "
    "referrer tags (sha256-<hex>, .sig, .att, .sbom) are caught only by a pattern that starts "
    "with sha256-.",
    no_args_is_help=True,
)

ScopeArg = Annotated[
    str, typer.Argument(help="A namespace (acme: all its repositories) or a repository (acme/app).")
]
PatternArg = Annotated[str, typer.Argument(help="Tags it holds: v*, release-*, latest …")]


def register(app: typer.Typer) -> None:
    policy_app.add_typer(immutable_app, name="immutable")
    app.add_typer(policy_app, name="policy")


@immutable_app.command("add")
def immutable_add(
    scope: ScopeArg,
    pattern: PatternArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Make the tags matching PATTERN in SCOPE immutable (tags already pushed included)."""
    added = on_store(config, data_dir, lambda r: r.tag_rules.add(scope, pattern), init=init)
    typer.echo(f"tags {pattern} on {scope} are immutable" + ("" if added else " (already)"))


@immutable_app.command("remove")
def immutable_remove(
    scope: ScopeArg,
    pattern: PatternArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Remove a rule: its tags may be moved and deleted again."""
    if not on_store(config, data_dir, lambda r: r.tag_rules.remove(scope, pattern), init=init):
        raise fail(f"no rule {pattern} on {scope}", USAGE)
    typer.echo(f"removed rule {pattern} on {scope}")


@immutable_app.command("list")
def immutable_list(
    scope: ScopeArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """The rules of SCOPE and, for a namespace, of each of its repositories."""

    async def action(registry: Registry) -> list[tuple[str, str]]:
        return [(r.scope, r.pattern) for r in await registry.tag_rules.rules(scope)]

    for rule_scope, pattern in on_store(config, data_dir, action, init=init):
        typer.echo(f"{rule_scope}\t{pattern}")
