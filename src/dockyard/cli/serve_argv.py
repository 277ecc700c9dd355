"""Reading a plain `dockyard serve` command line without building the Typer application.

Typer (with the click it carries and the pydantic it converts values with) took about a
sixth of a server's start to ready. A command line made only of `serve`'s own options, each
well formed, is read here with the same meaning; anything else — `--help`, a mistyped or
malformed option, a value out of range, an argument — is left to Typer, which prints the
same help and the same messages as before. `tests/unit/test_serve_argv.py` holds the table
below to the Typer command's options and compares what both read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Option:
    """One option of `dockyard serve`: its parameter, its names and the kind of its value."""

    name: str
    flags: tuple[str, ...]
    kind: str  # "str", "int", "float", "path", "file" (a path, not a folder), "flag", "list"
    off_flags: tuple[str, ...] = ()  # a boolean's "--no-…" side
    minimum: int | None = None
    default: Any = None


OPTIONS: tuple[Option, ...] = (
    Option("listen", ("--listen", "-l"), "str"),
    Option("data_dir", ("--data-dir",), "path"),
    Option("config", ("--config", "-c"), "file"),
    Option("workers", ("--workers",), "int"),
    Option("read_only", ("--read-only",), "flag", ("--read-write",)),
    Option("ui", ("--ui",), "flag", ("--no-ui",)),
    Option("insecure_no_auth", ("--insecure-no-auth",), "flag"),
    Option("auth", ("--auth",), "flag", ("--no-auth",)),
    Option("public_url", ("--public-url",), "str"),
    Option("tls_cert", ("--tls-cert",), "path"),
    Option("tls_key", ("--tls-key",), "path"),
    Option("storage", ("--storage",), "str"),
    Option("s3_endpoint", ("--s3-endpoint",), "str"),
    Option("s3_region", ("--s3-region",), "str"),
    Option("s3_path_style", ("--s3-path-style",), "flag", ("--s3-virtual-hosted",)),
    Option("metadata", ("--metadata",), "str"),
    Option("proxy", ("--proxy",), "list"),
    Option("mirror", ("--mirror",), "str"),
    Option("header_timeout", ("--header-timeout",), "float"),
    Option("shutdown_timeout", ("--shutdown-timeout",), "int"),
    Option("max_requests_per_client", ("--max-requests-per-client",), "int"),
    Option("anonymous_pull_limit", ("--anonymous-pull-limit",), "int"),
    Option("authenticated_pull_limit", ("--authenticated-pull-limit",), "int"),
    Option("pull_limit_window", ("--pull-limit-window",), "int"),
    Option("login_failure_limit", ("--login-failure-limit",), "int"),
    Option("login_failure_window", ("--login-failure-window",), "int"),
    Option("password_min_length", ("--password-min-length",), "int", minimum=1),
    Option("gc", ("--gc",), "flag", ("--no-gc",)),
    Option("gc_grace", ("--gc-grace-seconds",), "int", minimum=0),
    Option("gc_interval", ("--gc-interval",), "float"),
    Option(
        "gc_untagged",
        ("--gc-untagged-manifests",),
        "flag",
        ("--gc-keep-untagged-manifests",),
    ),
    Option("metrics", ("--metrics",), "flag", ("--no-metrics",)),
    Option("metrics_listen", ("--metrics-listen",), "str"),
    Option("verbose", ("--verbose", "-v"), "flag", default=False),
    Option("log_format", ("--log-format",), "str"),
    Option("no_fsync", ("--no-fsync",), "flag", default=False),
)

_BY_FLAG: dict[str, tuple[Option, bool]] = {
    **{flag: (option, True) for option in OPTIONS for flag in option.flags},
    **{flag: (option, False) for option in OPTIONS for flag in option.off_flags},
}


class _LeaveIt(Exception):
    """Not a plain command line: Typer reads it (and says what is wrong with it)."""


def read(args: list[str]) -> dict[str, Any] | None:
    """The parameters of `serve_with` for the arguments after `serve`, or None when Typer
    must read them."""
    try:
        return _read(args)
    except _LeaveIt:
        return None


def _read(args: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {option.name: option.default for option in OPTIONS}
    position = 0
    while position < len(args):
        word = args[position]
        position += 1
        name, equals, attached = word.partition("=") if word.startswith("--") else (word, "", "")
        if name not in _BY_FLAG:
            if len(word) > 2 and word[0] == "-" and word[1] != "-" and word[:2] in _BY_FLAG:
                name, attached, equals = word[:2], word[2:], "="  # -lHOST:PORT
            else:
                raise _LeaveIt
        option, on = _BY_FLAG[name]
        if option.kind == "flag":
            if equals:
                raise _LeaveIt
            values[option.name] = on
            continue
        if equals:
            raw = attached
        elif position < len(args):
            raw = args[position]
            position += 1
        else:
            raise _LeaveIt
        value = _converted(option, raw)
        if option.kind == "list":
            values[option.name] = [*(values[option.name] or []), value]
        else:
            values[option.name] = value
    return values


def _converted(option: Option, raw: str) -> Any:
    # A value that looks like an option, or none at all, is for Typer to judge.
    if not raw or (raw.startswith("-") and option.kind not in ("int", "float")):
        raise _LeaveIt
    # Python reads digits of every script as numbers; whether Typer does is Typer's to say.
    if option.kind in ("int", "float") and not raw.isascii():
        raise _LeaveIt
    try:
        if option.kind == "int":
            number = int(raw)
            if option.minimum is not None and number < option.minimum:
                raise _LeaveIt
            return number
        if option.kind == "float":
            return float(raw)
    except ValueError:
        raise _LeaveIt from None
    if option.kind == "file" and os.path.isdir(raw):
        raise _LeaveIt
    if option.kind in ("path", "file"):
        return Path(raw)
    return raw
