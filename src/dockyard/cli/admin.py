"""Administration on the store named by --data-dir/--config (like `registry garbage-collect`):
users, organisations, access tokens, repository visibility and deletion, storage usage."""

from __future__ import annotations

import asyncio
import getpass
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import click
import typer

from dockyard.cli.exits import FAILED, USAGE, fail
from dockyard.cli.folder import InitOpt, absent_message, announce, describe
from dockyard.config import ConfigError, load_settings, scrub
from dockyard.core.errors import RegistryError

T = TypeVar("T")

if TYPE_CHECKING:
    from dockyard.service.registry import Registry

user_app = typer.Typer(help="Manage user accounts.", no_args_is_help=True)
org_app = typer.Typer(help="Manage organisations and their members.", no_args_is_help=True)
token_app = typer.Typer(help="Manage personal access tokens.", no_args_is_help=True)
repo_app = typer.Typer(help="Repository settings, and deleting a repository.", no_args_is_help=True)
cache_app = typer.Typer(
    help="The pull-through cache (upstreams from --config).", no_args_is_help=True
)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML settings file.")]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The registry's data folder (default ./dockyard-data in the current directory; "
        "also DOCKYARD_DATA_DIR). A folder that holds no registry is refused unless --init.",
    ),
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin", help="Read the password from standard input instead of prompting."
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(org_app, name="org")
    app.add_typer(token_app, name="token")
    app.add_typer(repo_app, name="repo")
    app.add_typer(cache_app, name="cache")
    app.command("usage")(usage)
    register_migrate(app)


def on_store(
    config: Path | None,
    data_dir: Path | None,
    action: Callable[[Registry], Awaitable[T]],
    init: bool = False,
) -> T:
    """Run `action` on the registry the options name; one that does not exist is refused
    unless `init` (the command's --init) asks for it to be created."""
    try:
        settings = load_settings(config, {"data_dir": data_dir})
    except ConfigError as exc:
        raise fail(str(exc), USAGE) from exc

    from sqlalchemy.exc import SQLAlchemyError

    from dockyard.assembly import NoRegistry, open_registry
    from dockyard.storage.private import private_umask

    private_umask()  # what the commands write in the data folder stays the owner's

    async def run() -> T:
        from dockyard.service.audit import ACTOR, LOCAL

        ACTOR.set(LOCAL)  # what an admin command changes is recorded as done locally
        async with open_registry(settings, create=init) as registry:
            announce(settings)
            return await action(registry)

    try:
        return asyncio.run(run())
    except NoRegistry as exc:
        raise fail(absent_message(settings), USAGE) from exc
    except RegistryError as exc:
        raise fail(exc.message, USAGE) from exc
    except (KeyError, ValueError) as exc:
        raise fail(scrub(str(exc).strip("'\""), settings), USAGE) from exc
    except (OSError, SQLAlchemyError) as exc:
        # A database it cannot reach: one line, with any password the driver quoted hidden.
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise fail(f"cannot use {describe(settings)}: {scrub(reason, settings)}", FAILED) from exc


def read_password(from_stdin: bool, confirm: bool = True) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Repeat it: ") != password:
            raise fail("the passwords do not match", USAGE)
    if not password:
        raise fail("the password is empty", USAGE)
    return password


# -- users -------------------------------------------------------------------------------
@user_app.command("add")
def user_add(
    name: str,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Create a user (who owns the namespace NAME/…). The password has at least
    password_min_length characters (default 8)."""

    async def action(registry: Registry) -> None:
        # Asked for once the registry is known to be there: not typed twice for a refusal.
        password = read_password(password_stdin)
        try:
            await registry.accounts.create_user(name, password, admin=admin)
        except KeyError:
            raise fail(f"{name} already exists", USAGE) from None

    on_store(config, data_dir, action, init=init)
    typer.echo(f"created user {name}" + (" (administrator)" if admin else ""))


@user_app.command("list")
def user_list(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """List users."""
    accounts = on_store(
        config, data_dir, lambda r: r.accounts.store.list_accounts("user"), init=init
    )
    for account in accounts:
        flags = ["admin"] if account.is_admin else []
        if account.disabled_at is not None:
            flags.append("disabled")
        if account.pull_limit is not None:
            limit = account.pull_limit
            flags.append(f"pull limit {limit if limit > 0 else 'unlimited'}")
        typer.echo(account.name + (f"  ({', '.join(flags)})" if flags else ""))


RepositoriesOpt = Annotated[
    str | None,
    typer.Option(
        "--repositories",
        help="What becomes of the account's repositories: 'delete' them, or 'transfer' them "
        "(same names) to the user given with --to, who then owns the namespace. Asked for "
        "when the account has repositories and standard input is a terminal.",
    ),
]


@user_app.command("remove")
def user_remove(
    name: str,
    repositories: RepositoriesOpt = None,
    to: Annotated[
        str | None, typer.Option("--to", help="The user who receives the repositories.")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Delete an account (user or organisation) and its tokens; its repositories are deleted or
    handed to another user, so that nobody else can claim its name while they remain. Its
    sessions end within a second, and a new account of the same name does not revive them."""
    from dockyard.metadata.accounts import TRANSFER_REPOSITORIES, NamespaceInUse

    if to is not None and repositories is None:
        repositories = TRANSFER_REPOSITORIES

    async def remove(registry: Registry, choice: str | None, heir: str | None) -> bool:
        try:
            return await registry.accounts.remove_account(name, choice, heir)
        except KeyError:
            raise fail(f"no user {heir} to receive the repositories", USAGE) from None

    async def action(registry: Registry) -> tuple[bool, str | None, str | None]:
        try:
            return await remove(registry, repositories, to), repositories, to
        except NamespaceInUse:
            if not sys.stdin.isatty():
                raise fail(
                    f"{name} has repositories: say what becomes of them with "
                    "--repositories delete, or --repositories transfer --to USER",
                    USAGE,
                ) from None
        choice = click.prompt(
            f"{name} has repositories: delete them, or transfer them to another user?",
            type=click.Choice(["delete", "transfer"]),
        )
        heir = click.prompt("Transfer them to which user?") if choice == "transfer" else None
        return await remove(registry, choice, heir), choice, heir

    removed, choice, heir = on_store(config, data_dir, action, init=init)
    if not removed:
        raise fail(f"no user {name}", USAGE)
    if choice == TRANSFER_REPOSITORIES:
        typer.echo(f"removed {name}; its repositories now belong to {heir}")
    else:
        typer.echo(f"removed {name}" + (" and its repositories" if choice else ""))


@user_app.command("passwd")
def user_passwd(
    name: str,
    password_stdin: PasswordStdin = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Set a user's password (at least password_min_length characters, default 8); tokens
    issued before it stop working within a second."""

    async def action(registry: Registry) -> bool:
        return await registry.accounts.set_password(name, read_password(password_stdin))

    if not on_store(config, data_dir, action, init=init):
        raise fail(f"no user {name}", USAGE)
    typer.echo(f"password of {name} changed")


@user_app.command("disable")
def user_disable(
    name: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Disable a user: their password, access tokens, sessions and logins kept by clients are
    refused (within a second on a running server) until `dockyard user enable`. Their
    repositories stay, and public ones are still pulled by anyone. The last enabled
    administrator cannot be disabled."""
    if not on_store(config, data_dir, lambda r: r.accounts.disable_user(name), init=init):
        raise fail(f"no user {name}", USAGE)
    typer.echo(f"{name} is disabled")


@user_app.command("enable")
def user_enable(
    name: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Enable a disabled user again: their password, tokens and sessions work as before."""
    if not on_store(config, data_dir, lambda r: r.accounts.enable_user(name), init=init):
        raise fail(f"no user {name}", USAGE)
    typer.echo(f"{name} is enabled")


@user_app.command("admin")
def user_admin(
    name: str,
    revoke: Annotated[
        bool, typer.Option("--revoke", help="Take administrator rights away instead.")
    ] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Make a user an administrator."""
    if not on_store(config, data_dir, lambda r: r.accounts.set_admin(name, not revoke), init=init):
        raise fail(f"no user {name}", USAGE)
    typer.echo(f"{name} is {'no longer ' if revoke else ''}an administrator")


@user_app.command("pull-limit")
def user_pull_limit(
    name: str,
    limit: Annotated[str, typer.Argument(help="A number per window, 'unlimited', or 'default'.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Override an account's manifest pull limit (a manifest read by any endpoint counts)."""
    value: int | None = {"unlimited": -1, "default": None}.get(limit, 0)
    if value == 0:
        if not (limit.isascii() and limit.isdigit()) or len(limit) > 18:
            raise fail("the limit is a number, 'unlimited' or 'default'", USAGE)
        value = int(limit)
    if not on_store(config, data_dir, lambda r: r.accounts.set_pull_limit(name, value), init=init):
        raise fail(f"no account {name}", USAGE)
    typer.echo(f"pull limit of {name}: {limit}")


@user_app.command("import-htpasswd")
def user_import(
    path: Path,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Import users from a CNCF Distribution htpasswd file (bcrypt entries)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise fail(f"cannot read {path}: {exc.strerror}", USAGE) from exc
    imported, skipped = on_store(
        config, data_dir, lambda r: r.accounts.import_htpasswd(text), init=init
    )
    typer.echo(f"imported {imported} user(s)")
    for line in skipped:
        typer.echo(f"skipped {line}", err=True)


# -- organisations -----------------------------------------------------------------------
@org_app.command("create")
def org_create(
    name: str,
    owner: Annotated[
        str | None, typer.Option(help="A user who becomes the organisation's first owner.")
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Create an organisation (which owns the namespace NAME/…)."""

    async def action(registry: Registry) -> None:
        try:
            await registry.accounts.create_org(name, owner)
        except KeyError:
            raise fail(f"{name} already exists", USAGE) from None

    on_store(config, data_dir, action, init=init)
    typer.echo(f"created organisation {name}")


@org_app.command("add-member")
def org_add(
    org: str,
    user: str,
    role: Annotated[
        str,
        typer.Option(help="reader (pull), maintainer (pull, push, delete) or owner (everything)."),
    ] = "reader",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Add a user to an organisation, or change their role."""
    on_store(config, data_dir, lambda r: r.accounts.add_member(org, user, role), init=init)
    typer.echo(f"{user} is {role} of {org}")


@org_app.command("remove-member")
def org_remove(
    org: str,
    user: str,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Remove a user from an organisation; their tokens lose its repositories within a second."""
    removed = on_store(config, data_dir, lambda r: r.accounts.remove_member(org, user), init=init)
    if not removed:
        raise fail(f"{user} is not a member of {org}", USAGE)
    typer.echo(f"removed {user} from {org}")


@org_app.command("list")
def org_list(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """List organisations and their members."""

    async def action(registry: Registry) -> list[tuple[str, dict[str, str]]]:
        orgs = await registry.accounts.store.list_accounts("org")
        return [(o.name, await registry.accounts.store.members(o.name)) for o in orgs]

    for name, members in on_store(config, data_dir, action, init=init):
        listed = ", ".join(f"{user} ({role})" for user, role in sorted(members.items()))
        typer.echo(f"{name}: {listed or 'no members'}")


# -- access tokens -----------------------------------------------------------------------
def parse_duration(text: str) -> float:
    # A unit is required: a bare `90` read as seconds when 90 days were meant makes a token
    # that dies before it is used.
    match = re.fullmatch(r"([0-9]{1,12})([smhdw])", text.strip())
    if match is None:
        bare = re.fullmatch(r"[0-9]{1,12}", text.strip()) is not None
        raise fail(
            f"invalid duration {text!r}: "
            + ("a number needs a unit: " if bare else "")
            + "s, m, h, d or w, e.g. 90d, 12h, 30m",
            USAGE,
        )
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[match.group(2)]
    return int(match.group(1)) * unit


UserOpt = Annotated[str, typer.Option("--user", "-u", help="The account the token belongs to.")]


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="A name to tell tokens apart.")],
    scope: Annotated[
        str, typer.Option(help="read (pull), write (pull, push) or delete (pull, push, delete).")
    ] = "read",
    user: UserOpt = "admin",
    expires: Annotated[
        str | None,
        typer.Option(
            help="Lifetime with a unit (s, m, h, d, w), e.g. 90d or 12h; default: until revoked."
        ),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Create a personal access token; it is printed once and usable as a password for pulls
    and pushes, never for managing the account (that takes the password)."""
    lifetime = parse_duration(expires) if expires else None

    async def action(registry: Registry) -> str:
        if await registry.accounts.store.get_account(user) is None:
            raise fail(f"no user {user}", USAGE)
        try:
            _, secret = await registry.accounts.create_token(user, name, scope, lifetime)
        except KeyError:
            raise fail(f"{user} already has a token named {name}", USAGE) from None
        return secret

    typer.echo(on_store(config, data_dir, action, init=init))


@token_app.command("list")
def token_list(
    user: UserOpt = "admin",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """List an account's tokens (never their secrets)."""
    import datetime as dt

    def when(stamp: float | None) -> str:
        return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M") if stamp else "-"

    tokens = on_store(config, data_dir, lambda r: r.accounts.store.list_tokens(user), init=init)
    for token in tokens:
        state = "revoked" if token.revoked_at else "active"
        typer.echo(
            f"{token.id}  {token.name:<20} {token.scope:<7} {state:<8} "
            f"created {when(token.created_at)}  expires {when(token.expires_at)}  "
            f"last used {when(token.last_used_at)}"
        )


@token_app.command("revoke")
def token_revoke(
    token: Annotated[
        str, typer.Argument(help="The token's id (as `token list` shows), or its name with --user.")
    ],
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            "-u",
            help="The account owning a token named by its name "
            "(default admin); not needed with an id.",
        ),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Revoke a token; it, and bearer tokens obtained with it, stop working within a second."""
    import time

    async def action(registry: Registry) -> str | None:
        owner = user
        if owner is None:
            # An id is unique across accounts: its owner is known without --user.
            found = await registry.accounts.store.get_token(token)
            owner = found.account if found is not None else "admin"
        done = await registry.accounts.store.revoke_token(owner, token, time.time())
        return owner if done else None

    owner = on_store(config, data_dir, action, init=init)
    if owner is None:
        if user is None:
            raise fail(
                f"no active token with the id {token}, nor one named so owned by admin; "
                "name its owner with --user",
                USAGE,
            )
        raise fail(f"{user} has no active token {token}", USAGE)
    typer.echo(f"revoked {token}" + ("" if user else f" (of {owner})"))


# -- repositories ------------------------------------------------------------------------
@repo_app.command("visibility")
def repo_visibility(
    name: str,
    visibility: Annotated[str, typer.Argument(help="public or private")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Make a repository public (anyone may pull) or private."""
    from dockyard.core.names import validate_name

    validate = _checked(validate_name)
    validate(name)
    on_store(config, data_dir, lambda r: r.accounts.set_visibility(name, visibility), init=init)
    typer.echo(f"{name} is {visibility}")


@repo_app.command("default-visibility")
def repo_default(
    namespace: str,
    visibility: Annotated[
        str, typer.Argument(help="public, private, or 'default' for the registry's setting")
    ],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Set the visibility of new repositories in a user's or organisation's namespace."""
    value = None if visibility == "default" else visibility
    on_store(
        config, data_dir, lambda r: r.accounts.set_namespace_default(namespace, value), init=init
    )
    typer.echo(f"new repositories in {namespace}/ are {visibility}")


@repo_app.command("delete")
def repo_delete(
    name: Annotated[str, typer.Argument(help="The repository, e.g. acme/app.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Delete a repository: its tags, manifests, blob links, uploads in progress and
    visibility go at once, in one transaction, also while `dockyard serve` runs. Its bytes
    stay in storage (blobs other repositories hold keep serving there): the space is
    reclaimed by garbage collection, not by this command."""
    from dockyard.core.names import validate_name

    _checked(validate_name)(name)
    if not yes and not typer.confirm(f"Delete {name} and every tag and manifest in it?"):
        raise fail("nothing deleted", USAGE)
    removed = on_store(config, data_dir, lambda r: r.repositories.delete(name), init=init)
    typer.echo(
        f"deleted {name}: {removed.tags} tags, {removed.manifests} manifests, "
        f"{removed.blob_links} blob links, {len(removed.uploads)} uploads in progress "
        "(the space is reclaimed by garbage collection)"
    )


def usage(
    namespace: Annotated[
        str | None, typer.Argument(help="Only this namespace (a user or organisation).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Storage used per namespace and repository. A namespace's bytes count each blob once
    however many of its repositories hold it; "shared" bytes are held by another namespace
    too (deleting this one would not free them). Without NAMESPACE, also the registry's total
    (each blob once, including what awaits garbage collection) and the disk or bucket size."""
    import json

    from dockyard.api.routes.repositories import usage_json
    from dockyard.core.names import validate_name

    if namespace is not None:
        if "/" in namespace:
            raise fail("a namespace is one name, without '/'", USAGE)
        _checked(validate_name)(namespace)
    report = on_store(
        config,
        data_dir,
        lambda r: r.repositories.usage(None if namespace is None else [namespace]),
        init=init,
    )
    if as_json:
        typer.echo(json.dumps(usage_json(report), indent=2))
        return
    for ns in report.namespaces:
        typer.echo(
            f"{ns.name}/  {_size(ns.bytes)} in {ns.blobs} blobs, {ns.repositories} repositories, "
            f"{_size(ns.shared_bytes)} shared with other namespaces"
        )
        for repo in report.repositories:
            if repo.name == ns.name or repo.name.startswith(ns.name + "/"):
                typer.echo(f"  {repo.name}  {_size(repo.bytes)} in {repo.blobs} blobs")
    if not report.namespaces:
        typer.echo("nothing stored" + (f" in {namespace}" if namespace else ""))
    if report.total is not None:
        typer.echo(f"total: {_size(report.total.bytes)} in {report.total.blobs} blobs")
    if report.storage is not None:
        of = (
            f" of {_size(report.storage.total_bytes)}"
            if report.storage.total_bytes is not None
            else ""
        )
        typer.echo(f"{report.storage.kind}: {_size(report.storage.used_bytes)} used{of}")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def _checked(fn: Callable[[str], Any]) -> Callable[[str], Any]:
    def run(value: str) -> Any:
        try:
            return fn(value)
        except RegistryError as exc:
            raise fail(exc.message, USAGE) from exc

    return run


# -- pull-through cache ------------------------------------------------------------------
def parse_size(text: str) -> int:
    match = re.fullmatch(r"([0-9]{1,15}(?:\.[0-9]{1,15})?)\s*([kmgt]?)i?b?", text.strip().lower())
    if match is None:
        raise fail(f"invalid size {text!r}: use e.g. 500M, 20G", USAGE)
    scale = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}[match.group(2)]
    return int(float(match.group(1)) * scale)


def _require_proxies(registry: Registry) -> None:
    if not registry.settings.proxies:
        raise fail(
            "no upstreams are configured: give the --config file that lists `proxies`", USAGE
        )


@cache_app.command("stats")
def cache_stats(
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """How much the cached repositories hold on their own."""

    async def action(registry: Registry) -> Any:
        _require_proxies(registry)
        return await registry.cache.stats()

    usage = on_store(config, data_dir, action, init=init)
    typer.echo(
        f"repositories: {usage.repositories}\nmanifests: {usage.manifests}\n"
        f"blobs: {usage.blobs}\nbytes: {usage.bytes}"
    )


@cache_app.command("prune")
def cache_prune(
    max_size: Annotated[
        str | None,
        typer.Option(
            "--max-size",
            help="Evict least recently pulled images until the cache is under this "
            "size (e.g. 20G); default: the configured cache_max_bytes.",
        ),
    ] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    init: InitOpt = False,
) -> None:
    """Remove cached content nothing needs, evicting least recently used images if over the
    size limit. Content of ordinary repositories is never touched."""
    limit = parse_size(max_size) if max_size else None

    async def action(registry: Registry) -> Any:
        _require_proxies(registry)
        return await registry.cache.prune(limit)

    result = on_store(config, data_dir, action, init=init)
    typer.echo(
        f"evicted {result.manifests_evicted} manifest(s); removed "
        f"{result.blobs_removed} blob(s), {result.bytes_freed} bytes; "
        f"the cache now holds {result.usage.bytes} bytes"
    )


# -- moving to other backends ------------------------------------------------------------
def register_migrate(app: typer.Typer) -> None:
    app.command("migrate")(migrate_command)


def migrate_command(
    to_storage: Annotated[
        str | None,
        typer.Option(
            "--to-storage",
            help="s3://BUCKET[/PREFIX] to move the blobs to (S3 settings as for "
            "`serve`: --s3-endpoint, --s3-path-style, AWS_* credentials).",
        ),
    ] = None,
    to_metadata: Annotated[
        str | None,
        typer.Option(
            "--to-metadata", help="postgresql://… (an empty database) to move the metadata to."
        ),
    ] = None,
    s3_endpoint: Annotated[str | None, typer.Option("--s3-endpoint")] = None,
    s3_path_style: Annotated[bool, typer.Option("--s3-path-style")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Copy a registry (the one --data-dir/--config names) to S3 and/or PostgreSQL: every blob,
    verified while it streams, then every metadata row. Stop writes to the source first
    (serve it --read-only); afterwards start the replicas on the new backends."""
    from dockyard.assembly import NoRegistry, copy_registry, sqlite_missing
    from dockyard.storage.private import private_umask

    if not to_storage and not to_metadata:
        raise fail("say where to: --to-storage and/or --to-metadata", USAGE)
    try:
        source_settings = load_settings(config, {"data_dir": data_dir})
    except ConfigError as exc:
        raise fail(str(exc), USAGE) from exc
    if sqlite_missing(source_settings):
        raise fail(absent_message(source_settings), USAGE)
    announce(source_settings)
    update: dict[str, Any] = {}
    if to_storage:
        update.update(
            storage=to_storage, s3_path_style=s3_path_style or source_settings.s3_path_style
        )
        if s3_endpoint:
            update["s3_endpoint"] = s3_endpoint
    if to_metadata:
        update["metadata"] = to_metadata
    target_settings = source_settings.model_copy(update=update)
    private_umask()

    try:
        report, rows = asyncio.run(
            copy_registry(
                source_settings,
                target_settings,
                blobs=bool(to_storage),
                metadata=bool(to_metadata),
                copied=lambda d, n: typer.echo(f"copied {d} ({n} bytes)"),
            )
        )
    except NoRegistry as exc:
        raise fail(absent_message(source_settings), USAGE) from exc
    except (RegistryError, ValueError) as exc:
        raise fail(scrub(getattr(exc, "message", str(exc)), target_settings), FAILED) from exc
    if report is not None:
        typer.echo(
            f"blobs: {report.blobs_copied} copied ({report.bytes_copied} bytes), "
            f"{report.blobs_present} already there"
        )
    if rows is not None:
        typer.echo("metadata rows: " + ", ".join(f"{k} {v}" for k, v in rows.items() if v))
