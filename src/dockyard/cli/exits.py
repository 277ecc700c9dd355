"""How a command ends when it fails, the same for every command: one line on stderr,
`dockyard: <why>`, and an exit code that says which kind of failure it was.

    0 done                  3 not found
    1 failed                4 unauthorized or denied
    2 bad usage, options    5 digest mismatch (the data was discarded)
      or configuration      130 interrupted (Ctrl-C)

The client's errors (`dockyard.client.errors`) carry no exit codes; `exit_code` maps them here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dockyard.client.errors import ClientError, DigestMismatch, NotFound, Unauthorized, UsageError

if TYPE_CHECKING:
    import typer

FAILED = 1
USAGE = 2
NOT_FOUND = 3
UNAUTHORIZED = 4
DIGEST_MISMATCH = 5
INTERRUPTED = 130

# Denied and InUse are kinds of Unauthorized and exit as it does; anything else is FAILED.
_CLIENT_EXITS: tuple[tuple[type[ClientError], int], ...] = (
    (UsageError, USAGE),
    (NotFound, NOT_FOUND),
    (Unauthorized, UNAUTHORIZED),
    (DigestMismatch, DIGEST_MISMATCH),
)


def exit_code(exc: ClientError) -> int:
    return next((code for kind, code in _CLIENT_EXITS if isinstance(exc, kind)), FAILED)


def say(message: str) -> None:
    """The one line a failure prints, for a process that ends some other way than `fail`."""
    import typer  # here: a server process (`cli.serve`) never loads the cli's libraries

    typer.echo(f"dockyard: {message}", err=True)


def fail(message: str, code: int = FAILED) -> typer.Exit:
    """Print why and return the exit to raise: `raise fail(...) from exc`, so that the
    command's code (and a type checker) sees that it ends there."""
    import typer

    say(message)
    return typer.Exit(code)


def fail_with(exc: ClientError) -> typer.Exit:
    """A client error's message, with its kind's exit code."""
    return fail(str(exc), exit_code(exc))
