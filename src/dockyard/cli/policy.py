"""`dockyard policy …`: rules an owner sets on a namespace or repository, on the store named
by --data-dir/--config (also while `dockyard serve` runs on it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from dockyard.cli.admin import ConfigOpt, DataDirOpt, on_store
from dockyard.cli.exits import USAGE, fail
from dockyard.cli.folder import InitOpt

if TYPE_CHECKING:
    from dockyard.metadata.base import NamespaceQuota, RetentionPolicy
    from dockyard.service.registry import Registry
    from dockyard.service.retention import Expiry

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

retention_app = typer.Typer(
    help="Retention policies: which tags expire, ranked by push time in each repository. A tag "
    "goes when it is not among the --keep-last most recent and (with --older-than) was pushed "
    "longer ago; tags matching --keep, and immutable tags, stay. Applied by `dockyard serve` "
    "in the background; try a policy with --dry-run first.",
    no_args_is_help=True,
)

ScopeArg = Annotated[
    str, typer.Argument(help="A namespace (acme: all its repositories) or a repository (acme/app).")
]
PatternArg = Annotated[str, typer.Argument(help="Tags it holds: v*, release-*, latest …")]


def register(app: typer.Typer) -> None:
    policy_app.add_typer(immutable_app, name="immutable")
    policy_app.add_typer(quota_app, name="quota")
    policy_app.add_typer(retention_app, name="retention")
    from dockyard.cli import signed_policy

    signed_policy.register(policy_app)
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


DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Print what would be removed; change nothing.")
]


def _policy_text(policy: RetentionPolicy) -> str:
    parts = []
    if policy.keep_last is not None:
        parts.append(f"keep the last {policy.keep_last}")
    if policy.older_than_seconds is not None:
        parts.append(f"remove those pushed over {policy.older_than_seconds}s ago")
    if policy.keep_pattern is not None:
        parts.append(f"always keep {policy.keep_pattern}")
    return f"{policy.scope}: " + ", ".join(parts)


def _print_plan(plan: list[Expiry], verb: str) -> None:
    import datetime

    for expiry in plan:
        pushed = datetime.datetime.fromtimestamp(expiry.pushed_at, datetime.UTC)
        typer.echo(
            f"{verb} {expiry.repository}:{expiry.tag} ({expiry.digest}, pushed "
            f"{pushed:%Y-%m-%d %H:%M} UTC, policy of {expiry.policy})"
        )
    typer.echo(f"{verb} {len(plan)} tag{'s' if len(plan) != 1 else ''}")


@retention_app.command("set")
def retention_set(
    scope: ScopeArg,
    keep_last: Annotated[
        int | None, typer.Option("--keep-last", help="Keep the N most recently pushed tags.")
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Remove only tags pushed longer ago: 30d, 12h, 2w."),
    ] = None,
    keep: Annotated[
        str | None, typer.Option("--keep", help="Never remove tags matching this pattern (v*).")
    ] = None,
    dry_run: DryRunOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Set the retention policy of a namespace or repository (replacing its former one), and
    print what it removes now; with --dry-run only print it."""

    async def action(registry: Registry) -> list[Expiry]:
        from dockyard.service.retention import checked_policy

        policy = checked_policy(scope, keep_last, older_than, keep)
        plan = await registry.retention.plan(scope, policy)
        if not dry_run:
            await registry.retention.set(policy)
        return plan

    plan = on_store(config, data_dir, action, init=init)
    _print_plan(plan, "would remove" if dry_run else "will remove")
    if not dry_run:
        typer.echo(f"policy set on {scope}; `dockyard serve` applies it in the background")


@retention_app.command("run")
def retention_run(
    scope: ScopeArg,
    dry_run: DryRunOpt = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Apply the stored policies of SCOPE now (or with --dry-run, print what they remove)."""

    async def action(registry: Registry) -> list[Expiry]:
        if dry_run:
            return await registry.retention.plan(scope)
        return await registry.retention.apply(scope)

    _print_plan(
        on_store(config, data_dir, action, init=init), "would remove" if dry_run else "removed"
    )


@retention_app.command("remove")
def retention_remove(
    scope: ScopeArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Remove the retention policy of a namespace or repository."""
    if not on_store(config, data_dir, lambda r: r.retention.remove(scope), init=init):
        raise fail(f"no retention policy on {scope}", USAGE)
    typer.echo(f"removed the retention policy of {scope}")


@retention_app.command("list")
def retention_list(
    scope: ScopeArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """The retention policies of SCOPE and, for a namespace, of its repositories."""
    for policy in on_store(config, data_dir, lambda r: r.retention.policies(scope), init=init):
        typer.echo(_policy_text(policy))
