"""`dockyard policy …`: rules an owner sets on a namespace or repository, on the store named
by --data-dir/--config (also while `dockyard serve` runs on it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.admin import ConfigOpt, DataDirOpt, on_store
from dockyard.cli.exits import USAGE, fail
from dockyard.cli.folder import InitOpt

if TYPE_CHECKING:
    from dockyard.metadata.base import NamespaceQuota
    from dockyard.service.registry import Registry

policy_app = typer.Typer(help="Rules on namespaces and repositories.", no_args_is_help=True)
immutable_app = typer.Typer(
    help="Immutable tags: tags matching a pattern, once pushed, never move and are never "
    "deleted. A pattern is a tag with '*' for any characters (v*, release-*). Signature and "
    "referrer tags (sha256-<hex>, .sig, .att, .sbom) are caught only by a pattern that starts "
    "with sha256-.",
    no_args_is_help=True,
)

quota_app = typer.Typer(
    help="Storage quotas per namespace, in deduplicated bytes (a blob in two repositories of "
    "the namespace counts once). A push that would pass it is refused and stores nothing.",
    no_args_is_help=True,
)

ScopeArg = Annotated[
    str, typer.Argument(help="A namespace (acme: all its repositories) or a repository (acme/app).")
]
PatternArg = Annotated[str, typer.Argument(help="Tags it holds: v*, release-*, latest …")]


def register(app: typer.Typer) -> None:
    policy_app.add_typer(immutable_app, name="immutable")
    policy_app.add_typer(quota_app, name="quota")
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


def _describe(quota: NamespaceQuota) -> str:
    from dockyard.service.quotas import human

    limit = "no quota" if quota.limit is None else f"quota {human(quota.limit)}"
    return f"{quota.namespace}: {human(quota.used)} used, {limit}"


@quota_app.command("set")
def quota_set(
    namespace: Annotated[str, typer.Argument(help="A namespace: a user or organisation name.")],
    size: Annotated[
        str, typer.Argument(help="10GiB, 500MB, 1.5T (KiB…: powers of 1024; KB…: of 1000), none")
    ],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Set (or with `none` remove) the storage quota of a namespace. Content already over a
    lowered quota stays; only new content is refused."""
    quota = on_store(config, data_dir, lambda r: r.quotas.set(namespace, size), init=init)
    typer.echo(_describe(quota))


@quota_app.command("show")
def quota_show(
    namespace: Annotated[str, typer.Argument(help="A namespace: a user or organisation name.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """The quota of a namespace and the deduplicated bytes it uses."""
    typer.echo(_describe(on_store(config, data_dir, lambda r: r.quotas.get(namespace), init=init)))
