"""`dockyard serve` reads a plain command line without Typer (`cli/serve_argv.py`): what it
reads must be what the Typer command reads, and whatever it does not take (help, mistakes)
must be left to Typer, which answers as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer.main

from dockyard.cli.commands import root_app
from dockyard.cli.serve_argv import OPTIONS, read

SERVE = typer.main.get_command(root_app).commands["serve"]  # type: ignore[attr-defined]


def _typer_reads(args: list[str]) -> dict[str, Any] | None:
    """The parameters the Typer command passes on, or None when it refuses or only prints."""
    try:
        ctx = SERVE.make_context("serve", list(args))
    except Exception:  # click's usage errors and the help's exit
        return None
    return {name: _plain(value) for name, value in ctx.params.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value] or None
    if isinstance(value, Path):
        return str(value)
    return value


def test_the_table_is_the_typer_commands_options() -> None:
    options = {p.name: p for p in SERVE.params}
    assert [o.name for o in OPTIONS] == list(options)
    for option in OPTIONS:
        theirs = options[option.name]
        assert tuple(theirs.opts) == option.flags, option.name
        assert tuple(theirs.secondary_opts) == option.off_flags, option.name
        assert theirs.multiple == (option.kind == "list"), option.name
        assert theirs.is_flag == (option.kind == "flag"), option.name
        assert _plain(theirs.default) == option.default, option.name
        converts = theirs.type  # click's parameter type: the kind of value, its bounds
        assert getattr(converts, "min", None) == option.minimum, option.name
        assert getattr(converts, "max", None) is None, option.name
        if option.kind not in ("flag", "list"):
            # click names a path that may not be a folder "file", an int with bounds "int range"
            kind = "int" if converts.name == "int range" else converts.name
            assert kind == option.kind, option.name
            if option.kind == "file":
                assert converts.dir_okay is False, option.name


PLAIN = [
    [],
    ["--listen", "127.0.0.1:5001", "--data-dir", "d", "--workers", "2"],
    ["-l0.0.0.0:1", "-c", "c.yml", "--workers=3", "-v", "--no-fsync"],
    ["--no-ui", "--auth", "--read-write", "--read-only", "--ui", "--no-auth", "--insecure-no-auth"],
    ["--proxy", "a=http://a", "--proxy=b=http://b", "--mirror", "a"],
    ["--gc-grace-seconds", "0", "--gc-interval", "1.5", "--header-timeout=2", "--no-gc"],
    ["--password-min-length", "8", "--log-format", "json", "--s3-virtual-hosted"],
    ["--gc-keep-untagged-manifests", "--metrics-listen", "127.0.0.1:9", "--no-metrics"],
    ["--storage", "s3://b/p", "--s3-endpoint", "http://127.0.0.1:9", "--s3-region", "x"],
    ["--s3-path-style", "--metadata", "postgresql://u@h/db", "--public-url", "https://r.example"],
    ["--tls-cert", "c.pem", "--tls-key", "k.pem", "--shutdown-timeout", "5", "--verbose"],
    ["--max-requests-per-client", "0", "--anonymous-pull-limit", "1"],
    ["--authenticated-pull-limit", "2", "--pull-limit-window", "60", "--login-failure-limit", "3"],
    ["--login-failure-window", "9", "--workers", " 4", "--workers", "5", "--gc-untagged-manifests"],
    ["--workers", "-1", "--gc-interval", "-2.5", "--header-timeout", "inf", "--metrics"],
]
NOT_PLAIN = [
    ["--help"],
    ["--listen", "127.0.0.1:1", "--help"],
    ["--workers", "many"],
    ["--workers"],
    ["--workers", "1.5"],
    ["--bogus"],
    ["extra"],
    ["--", "--listen", "x"],
    ["--gc-grace-seconds", "-1"],
    ["--password-min-length", "0"],
    ["--ui=yes"],
    ["--listen", "-v"],
    ["--listen="],
    ["-x"],
    ["-vl", "127.0.0.1:1"],
    ["--list", "127.0.0.1:1"],
    ["--config", "."],
    ["--workers", "\u0663"],
    ["--gc-interval", "1_0"],
    ["--workers", "0x10"],
]


@pytest.mark.parametrize("args", PLAIN, ids=lambda args: " ".join(args) or "none")
def test_a_plain_command_line_reads_as_typer_reads_it(args: list[str]) -> None:
    ours = read(args)
    assert ours is not None
    assert {k: _plain(v) for k, v in ours.items()} == _typer_reads(args)


@pytest.mark.parametrize("args", NOT_PLAIN, ids=" ".join)
def test_anything_else_is_left_to_typer(args: list[str]) -> None:
    ours = read(args)
    if ours is not None:  # taken only if Typer reads it the same
        assert {k: _plain(v) for k, v in ours.items()} == _typer_reads(args)
    if _typer_reads(args) is None:
        assert ours is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen", "nohost"], "invalid configuration: listen: Value error, expected HOST:PORT"),
        (["--mirror", "docker.io"], "--mirror names one of the --proxy upstreams"),
        (
            ["--workers", "65"],
            "invalid configuration: workers: Input should be less than or equal to 64",
        ),
    ],
)
def test_a_refused_plain_command_line_exits_as_the_typer_command_did(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Read without Typer, refused by the settings: one line and status 2, no traceback."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "serve", "--data-dir", str(tmp_path / "d"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert read(["--data-dir", "d", *args]) is not None
    assert result.returncode == 2
    assert result.stderr == f"dockyard: {message}\n"
    assert not (tmp_path / "d").exists()
