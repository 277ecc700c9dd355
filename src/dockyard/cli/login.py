"""`dockyard login` / `dockyard logout`: credentials in ~/.docker/config.json, as docker keeps them.

The password is read from a prompt (getpass) or from stdin (`--password-stdin`), never from the
command line, and is checked against the registry before anything is stored.
"""

from __future__ import annotations

import asyncio
import getpass
import sys
from pathlib import Path
from typing import Annotated

import typer

from dockyard.cli.exits import USAGE, fail, fail_with
from dockyard.cli.images import CaCertOpt
from dockyard.client.credentials import Credentials, CredentialStore, normalize_host
from dockyard.client.errors import ClientError
from dockyard.core.reference import DOCKER_HUB

RegistryArg = Annotated[
    str | None,
    typer.Argument(
        help="Registry host, e.g. ghcr.io or localhost:5000 (a URL is accepted). "
        "Default: Docker Hub.",
        show_default=False,
    ),
]
InsecureOpt = Annotated[
    bool,
    typer.Option(
        "--insecure",
        help="Do not check this registry's certificate, and use plain "
        "HTTP if it does not speak TLS (like docker's insecure-registries). HTTPS is "
        "always tried first; localhost and 127.0.0.0/8 fall back to plain HTTP "
        "without this.",
    ),
]


def _host(registry: str | None) -> str:
    return normalize_host(registry) if registry else DOCKER_HUB


def _read_password_stdin() -> str:
    password = sys.stdin.read()
    # Like docker: strip the trailing newline(s) that `echo` and files add.
    return password.rstrip("\r\n")


async def _verify(
    host: str, creds: Credentials, insecure: bool, ca_cert: list[Path] | None
) -> tuple[str | None, str | None]:
    """The refresh token the registry issued, if any, and the scheme it answered on."""
    from dockyard.client.registry import RegistryClient

    async with RegistryClient(
        host, credentials=creds, insecure=insecure, ca_certs=ca_cert or ()
    ) as client:
        return await client.check_login(), client.scheme


def login(
    registry: RegistryArg = None,
    username: Annotated[
        str | None,
        typer.Option(
            "--username",
            "-u",
            help="User name. Prompted for when omitted (required with --password-stdin).",
        ),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read the password (or access token) from "
            "standard input instead of prompting for it; the only non-interactive "
            "way, so it never shows up in the process list or shell history.",
        ),
    ] = False,
    insecure: InsecureOpt = False,
    ca_cert: CaCertOpt = None,
) -> None:
    """Log in to a registry: verify the credentials, then store them where docker does.

    Credentials go to $DOCKER_CONFIG/config.json (default ~/.docker/config.json), or to the
    credsStore / credHelpers helper configured there. When the registry's token service issues a
    refresh token, that is stored instead of the password. Exit 4 when the registry refuses
    the credentials.
    """
    host = _host(registry)
    if password_stdin:
        if not username:
            raise fail("--password-stdin needs --username", USAGE)
        password = _read_password_stdin()
    else:
        if not username:
            username = typer.prompt("Username")
        password = getpass.getpass("Password: ")
    if not username or not password:
        raise fail("a user name and a password are both required", USAGE)
    creds = Credentials(username=username, password=password)
    try:
        refresh_token, scheme = asyncio.run(_verify(host, creds, insecure, ca_cert))
        stored = Credentials(identity_token=refresh_token) if refresh_token else creds
        path = CredentialStore().store(host, stored)
    except ClientError as exc:
        raise fail_with(exc) from None
    typer.echo(
        f"{host} answered over "
        f"{'HTTPS' if scheme == 'https' else 'plain HTTP (it does not speak TLS)'}"
    )
    typer.echo(f"Credentials for {host} saved in {path}")
    typer.echo("Login Succeeded")


def logout(registry: RegistryArg = None) -> None:
    """Log out of a registry: remove its credentials from the docker config (and its helper)."""
    host = _host(registry)
    try:
        removed = CredentialStore().erase(host)
    except ClientError as exc:
        raise fail_with(exc) from None
    if removed:
        typer.echo(f"Removing login credentials for {host}")
    else:
        typer.echo(f"Not logged in to {host}")


def register(app: typer.Typer) -> None:
    """Add `login` and `logout` to the `dockyard` command."""
    app.command("login")(login)
    app.command("logout")(logout)
