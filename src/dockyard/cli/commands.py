"""`dockyard`: serve a registry (and, as it grows, work with images without a daemon)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from dockyard import __version__
from dockyard.cli.exits import INTERRUPTED, USAGE, fail, say
from dockyard.cli.folder import InitOpt
from dockyard.config import (
    ConfigError,
    check_security,
    redacted,
)


def _top() -> typer.Typer:
    return typer.Typer(
        help="Dockyard: a container image registry server and a daemonless client.",
        no_args_is_help=True,
        add_completion=False,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
    )


root_app = _top()
config_app = typer.Typer(help="Inspect and validate configuration.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the metadata database.", no_args_is_help=True)
root_app.add_typer(config_app, name="config")
root_app.add_typer(db_app, name="db")

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML file with settings (keys as in `dockyard config show`). Also DOCKYARD_CONFIG.",
        exists=False,
        dir_okay=False,
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder for blobs and the SQLite metadata. Default ./dockyard-data; "
        "also DOCKYARD_DATA_DIR.",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dockyard {__version__}")
        raise typer.Exit()


@root_app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Dockyard: a container image registry server and a daemonless client."""


@root_app.command()
def serve(
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            "-l",
            help="HOST:PORT to listen on. Default 127.0.0.1:5000; also DOCKYARD_LISTEN.",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    config: ConfigOpt = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Server processes; 0 means one per CPU core. Also DOCKYARD_WORKERS."),
    ] = None,
    read_only: Annotated[
        bool | None,
        typer.Option(
            "--read-only/--read-write",
            help="Serve pulls only; pushes and deletes answer "
            "UNSUPPORTED. Also DOCKYARD_READ_ONLY.",
        ),
    ] = None,
    ui: Annotated[
        bool | None,
        typer.Option(
            "--ui/--no-ui",
            help="Serve the web pages at / (browse repositories, sign in, access tokens); "
            "on by default. /v2/ and /api/v1 are the same either way. Also DOCKYARD_UI.",
        ),
    ] = None,
    insecure_no_auth: Annotated[
        bool | None,
        typer.Option(
            "--insecure-no-auth",
            help="Serve a non-loopback address without accounts (anyone who reaches it "
            "can push and delete). Also DOCKYARD_INSECURE_NO_AUTH.",
        ),
    ] = None,
    auth: Annotated[
        bool | None,
        typer.Option(
            "--auth/--no-auth",
            help="Require accounts and Docker-style tokens (always on for a "
            "non-loopback address unless --insecure-no-auth). The first start creates the "
            "administrator 'admin' (password from DOCKYARD_ADMIN_PASSWORD, else printed once). "
            "Also DOCKYARD_AUTH.",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="https://HOST[:PORT][/PATH] clients reach this registry at (a name, a proxy "
            "in front); the token realm announced to clients is built from it, never from "
            "the request's Host header. Default: the listen address. Also DOCKYARD_PUBLIC_URL.",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--tls-cert",
            help="PEM certificate (chain) to serve HTTPS (HTTP/2 too); "
            "checked with --tls-key before serving. Also DOCKYARD_TLS_CERT.",
        ),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(
            "--tls-key", help="PEM private key of --tls-cert, unencrypted. Also DOCKYARD_TLS_KEY."
        ),
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="s3://BUCKET[/PREFIX] to keep blobs in S3-compatible "
            "storage (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); "
            "default: the data folder. Also DOCKYARD_STORAGE.",
        ),
    ] = None,
    s3_endpoint: Annotated[
        str | None,
        typer.Option("--s3-endpoint", help="S3 endpoint URL (MinIO, SeaweedFS, Ceph, GCS)."),
    ] = None,
    s3_region: Annotated[str | None, typer.Option("--s3-region", help="S3 region.")] = None,
    s3_path_style: Annotated[
        bool | None,
        typer.Option(
            "--s3-path-style/--s3-virtual-hosted",
            help="Path-style S3 addressing (most self-hosted S3 servers).",
        ),
    ] = None,
    metadata: Annotated[
        str | None,
        typer.Option(
            "--metadata",
            help="postgresql://USER[:PASSWORD]@HOST[:PORT]/DB to keep metadata in PostgreSQL "
            "(shared by replicas); default SQLite in the data folder. Also DOCKYARD_METADATA.",
        ),
    ] = None,
    proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--proxy",
            help="Cache another registry: NAME=URL, e.g. "
            "docker.io=https://registry-1.docker.io; then pull localhost:5000/docker.io/library/"
            "alpine. Repeatable. Credentials, TTL and more in the config file's `proxies` list.",
        ),
    ] = None,
    mirror: Annotated[
        str | None,
        typer.Option(
            "--mirror",
            help="The --proxy NAME that also answers un-prefixed names, for docker's "
            "registry-mirrors (e.g. /v2/library/alpine). A local repository of the same name "
            "wins for those who may pull it; with accounts on, only administrators may then "
            "create organisations.",
        ),
    ] = None,
    header_timeout: Annotated[
        float | None,
        typer.Option(
            "--header-timeout",
            help="Seconds a client has to send a request's headers after connecting (or after "
            "the previous answer) before the connection is closed; default 10. Also "
            "DOCKYARD_HEADER_TIMEOUT_SECONDS.",
        ),
    ] = None,
    shutdown_timeout: Annotated[
        int | None,
        typer.Option(
            "--shutdown-timeout",
            help="Seconds requests in progress may take to finish after SIGTERM or SIGINT "
            "(no new connections are accepted, idle ones are closed); then the workers are "
            "stopped. Default 30. Also DOCKYARD_SHUTDOWN_TIMEOUT_SECONDS.",
        ),
    ] = None,
    max_requests_per_client: Annotated[
        int | None,
        typer.Option(
            "--max-requests-per-client",
            help="Requests one client address (an IPv6 client's /64) may have in progress at "
            "once (per worker; "
            "X-Forwarded-For counts from trusted_proxies); more answer 429. Default 64, 0 = "
            "unlimited. Also DOCKYARD_MAX_REQUESTS_PER_CLIENT.",
        ),
    ] = None,
    anonymous_pull_limit: Annotated[
        int | None,
        typer.Option(
            "--anonymous-pull-limit",
            help="Manifest pulls per window per anonymous client address (with accounts on); "
            "more answer 429. Default 100, 0 = unlimited. Also anonymous_pull_limit in the "
            "--config file and DOCKYARD_ANONYMOUS_PULL_LIMIT.",
        ),
    ] = None,
    authenticated_pull_limit: Annotated[
        int | None,
        typer.Option(
            "--authenticated-pull-limit",
            help="Manifest pulls per window per account (`dockyard user pull-limit` overrides "
            "it for one); default 200, 0 = unlimited. Also authenticated_pull_limit, "
            "DOCKYARD_AUTHENTICATED_PULL_LIMIT.",
        ),
    ] = None,
    pull_limit_window: Annotated[
        int | None,
        typer.Option(
            "--pull-limit-window",
            help="Seconds in a pull-limit window; default 21600 (six hours). Windows are fixed, "
            "aligned on multiples of this length since 1970-01-01 UTC: every count starts "
            "again at zero when one ends. Also pull_limit_window_seconds, "
            "DOCKYARD_PULL_LIMIT_WINDOW_SECONDS.",
        ),
    ] = None,
    login_failure_limit: Annotated[
        int | None,
        typer.Option(
            "--login-failure-limit",
            help="Failed password logins per window per account and client address (ten "
            "times as many per account from all addresses) before 429; default 10, 0 = off. "
            "Also login_failure_limit, DOCKYARD_LOGIN_FAILURE_LIMIT.",
        ),
    ] = None,
    login_failure_window: Annotated[
        int | None,
        typer.Option(
            "--login-failure-window",
            help="Seconds in a failed-login window (fixed, like --pull-limit-window); default "
            "300. Also login_failure_window_seconds, DOCKYARD_LOGIN_FAILURE_WINDOW_SECONDS.",
        ),
    ] = None,
    password_min_length: Annotated[
        int | None,
        typer.Option(
            "--password-min-length",
            min=1,
            help="Shortest password an account may be given (default 8; user add, user "
            "passwd, the account API and DOCKYARD_ADMIN_PASSWORD). Also "
            "DOCKYARD_PASSWORD_MIN_LENGTH.",
        ),
    ] = None,
    gc: Annotated[
        bool | None,
        typer.Option(
            "--gc/--no-gc",
            help="Collect garbage while serving (on by default): blobs nothing references "
            "after the grace delay, expired uploads. Also DOCKYARD_GC.",
        ),
    ] = None,
    gc_grace: Annotated[
        int | None,
        typer.Option(
            "--gc-grace-seconds",
            min=0,
            help="Seconds content nothing references is kept before it is collected "
            "(default 3600; 0 collects at once). Also DOCKYARD_GC_GRACE_SECONDS.",
        ),
    ] = None,
    gc_interval: Annotated[
        float | None,
        typer.Option(
            "--gc-interval",
            help="Seconds between collections while serving (default 60). Also "
            "DOCKYARD_GC_INTERVAL_SECONDS.",
        ),
    ] = None,
    gc_untagged: Annotated[
        bool | None,
        typer.Option(
            "--gc-untagged-manifests/--gc-keep-untagged-manifests",
            help="Also collect manifests no tag, index or referrer subject keeps (default: "
            "keep them). Also DOCKYARD_GC_UNTAGGED_MANIFESTS.",
        ),
    ] = None,
    metrics: Annotated[
        bool | None,
        typer.Option(
            "--metrics/--no-metrics",
            help="Keep Prometheus metrics (on by default), served at /metrics to administrators "
            "(to anyone without accounts). Also DOCKYARD_METRICS.",
        ),
    ] = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(
            "--metrics-listen",
            help="HOST:PORT of a second listener that serves /metrics without authentication; "
            "bind it to loopback or a private network. Also DOCKYARD_METRICS_LISTEN.",
        ),
    ] = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Also log the libraries' own lines, such as one per request the pull-through "
            'cache sends upstream (httpx\'s "HTTP Request:").',
        ),
    ] = False,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="text (default, for people) or json (one object per line: time, level, "
            "logger, message, request_id, and the request's fields on access lines). Also "
            "DOCKYARD_LOG_FORMAT.",
        ),
    ] = None,
    no_fsync: Annotated[
        bool,
        typer.Option(
            "--no-fsync",
            help="Do not fsync blobs before acknowledging them (faster, loses "
            "acknowledged data on power failure; for throwaway registries).",
        ),
    ] = False,
) -> None:
    """Run the registry: OCI Distribution Spec 1.1 and Docker Registry HTTP API V2.

    With no options it listens on 127.0.0.1:5000 and keeps everything under ./dockyard-data
    (blobs on the filesystem, metadata in SQLite). Settings come from defaults, then the
    --config file, then DOCKYARD_* variables, then these flags.
    """
    from dockyard.cli.serve_entry import serve_with

    serve_with(
        listen=listen,
        data_dir=data_dir,
        config=config,
        workers=workers,
        read_only=read_only,
        ui=ui,
        insecure_no_auth=insecure_no_auth,
        auth=auth,
        public_url=public_url,
        tls_cert=tls_cert,
        tls_key=tls_key,
        storage=storage,
        s3_endpoint=s3_endpoint,
        s3_region=s3_region,
        s3_path_style=s3_path_style,
        metadata=metadata,
        proxy=proxy,
        mirror=mirror,
        header_timeout=header_timeout,
        shutdown_timeout=shutdown_timeout,
        max_requests_per_client=max_requests_per_client,
        anonymous_pull_limit=anonymous_pull_limit,
        authenticated_pull_limit=authenticated_pull_limit,
        pull_limit_window=pull_limit_window,
        login_failure_limit=login_failure_limit,
        login_failure_window=login_failure_window,
        password_min_length=password_min_length,
        gc=gc,
        gc_grace=gc_grace,
        gc_interval=gc_interval,
        gc_untagged=gc_untagged,
        metrics=metrics,
        metrics_listen=metrics_listen,
        verbose=verbose,
        log_format=log_format,
        no_fsync=no_fsync,
    )


@config_app.command("check")
def config_check(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Validate the configuration (file, environment) without serving, the TLS certificate
    and key included; exit 2 if invalid. Says on stderr which data folder it names, and whether
    a registry is there yet."""
    from dockyard.assembly import sqlite_missing
    from dockyard.cli.folder import describe
    from dockyard.cli.serve_entry import settings_or_fail

    settings = settings_or_fail(config, data_dir=data_dir)
    try:
        check_security(settings)
    except ConfigError as exc:
        raise fail(str(exc), USAGE) from exc
    if sqlite_missing(settings):
        say(f"{settings.data_dir.resolve()} holds no registry yet (`dockyard serve` creates it)")
    else:
        say(f"configuration for {describe(settings)}")
    typer.echo("configuration is valid")


@config_app.command("show")
def config_show(config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Print the effective settings as YAML, with every key and its value; passwords and
    secret keys are shown as ***."""
    import yaml

    from dockyard.cli.serve_entry import settings_or_fail

    settings = settings_or_fail(config, data_dir=data_dir)
    typer.echo(yaml.safe_dump(redacted(settings), sort_keys=False).rstrip())


@db_app.command("upgrade")
def db_upgrade(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, init: InitOpt = False
) -> None:
    """Migrate the metadata schema to the newest revision (also done at every start); with
    --init, create a new registry where there is none."""
    from dockyard.assembly import registry_exists
    from dockyard.cli.folder import absent_message, announce
    from dockyard.cli.serve import prepare
    from dockyard.cli.serve_entry import settings_or_fail

    settings = settings_or_fail(config, data_dir=data_dir)
    if not init and not registry_exists(settings):
        raise fail(absent_message(settings), USAGE)
    announce(settings)
    prepare(settings)
    typer.echo("metadata schema is up to date")


# The commands defined here; any other command needs the module that adds it.
OWN_COMMANDS = frozenset({"serve", "config", "db"})
# The modules that add the other commands (each module's `register`), in the order the full
# help lists them, and which module adds each command: a command named on the command line
# loads its own module alone, not the eleven others and their libraries, and Typer builds the
# click commands of that module's signatures only (bench/README.md, "The command line's start").
# `tests/unit/test_serve_imports.py` holds this table to what the modules register.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "login": ("login", "logout"),
    "images": (
        "push",
        "pull",
        "copy",
        "tag",
        "inspect",
        "tags",
        "delete",
        "catalog",
        "manifest",
        "ref",
    ),
    "referrers": ("attach", "discover"),
    "signing": ("sign", "verify", "key"),
    "attest": ("attest", "verify-attestation"),
    "admin": ("usage", "migrate", "user", "org", "token", "repo", "cache"),
    "audit": ("audit",),
    "doctor": ("doctor",),
    "fsck": ("fsck",),
    "gc": ("gc",),
    "policy": ("policy",),
    "webhook": ("webhook",),
}
MODULE_OF_COMMAND = {
    command: module for module, commands in COMMAND_MODULES.items() for command in commands
}
_complete: list[typer.Typer] = []


def full_app() -> typer.Typer:
    """The command line with every command: the client's and the administrator's modules are
    imported here, not when `dockyard serve` starts (they were a third of its start)."""
    if not _complete:
        for name in COMMAND_MODULES:
            importlib.import_module(f"dockyard.cli.{name}").register(root_app)
        _complete.append(root_app)
    return root_app


def one_module_app(module: str) -> typer.Typer:
    """The top level (its --version) with the commands of `module` alone."""
    app = _top()
    app.callback()(root)
    importlib.import_module(f"dockyard.cli.{module}").register(app)
    return app


def app_for(argv: list[str]) -> typer.Typer:
    """The command line `argv` needs: this module's own commands alone when it names one of
    them (or asks only for the version), the commands of one module when it names one of
    those, else all (the top-level --help, no command, a mistyped word)."""
    word = argv[1] if len(argv) > 1 else None
    if word in OWN_COMMANDS or (word == "--version" and len(argv) == 2):
        return root_app
    if word in MODULE_OF_COMMAND:
        return one_module_app(MODULE_OF_COMMAND[word])
    return full_app()


def __getattr__(name: str) -> typer.Typer:
    # `from dockyard.cli.commands import app` (and `dockyard.cli.main`'s): the whole command line.
    if name == "app":
        return full_app()
    raise AttributeError(name)


def main() -> None:
    """Run the Typer application on `sys.argv` (`dockyard.cli.main.main` reads a plain
    `dockyard serve` itself)."""
    from dockyard.core.native_threads import settle

    try:
        app_for(sys.argv)()
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    finally:
        # A thread of obstore's may still be handing its last result to the event loop: the
        # interpreter must not finalise under it (SIGABRT at exit, dockyard.core.native_threads).
        settle()
