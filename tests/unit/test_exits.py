"""The client's errors end a command with the exit code its docs promise, from one table."""

from __future__ import annotations

import pytest
import typer

from dockyard.cli import exits
from dockyard.client import errors


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.ClientError("x"), 1),
        (errors.UsageError("x"), 2),
        (errors.NotFound("x"), 3),
        (errors.Unauthorized("x"), 4),
        (errors.Denied("x"), 4),
        (errors.InUse("x", ["sha256:ab"]), 4),
        (errors.DigestMismatch("x"), 5),
        (errors.RateLimited("x", 1.0), 1),
        (errors.ConnectionFailed("x"), 1),
        (errors.TransferInterrupted("x"), 1),
        (errors.CredentialsError("x"), 1),
    ],
)
def test_each_kind_of_client_error_has_its_exit_code(
    error: errors.ClientError, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exits.exit_code(error) == code
    ended = exits.fail_with(error)
    assert isinstance(ended, typer.Exit) and ended.exit_code == code
    assert capsys.readouterr().err == "dockyard: x\n"


def test_every_client_error_is_in_the_tree() -> None:
    named = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    assert all(issubclass(kind, errors.ClientError) for kind in named)
    for kind in named:
        assert kind.__name__ in (errors.__doc__ or ""), kind
