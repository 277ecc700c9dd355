"""`dockyard serve` loads the server's modules, not the client's or the admin commands': the
command line imports a command's module only when that command (or the full help) is asked for."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from typer.testing import CliRunner

PROBE = textwrap.dedent("""
    import json, sys
    from dockyard.cli.main import app_for
    command = app_for(sys.argv[1:])
    import typer.main
    names = sorted(typer.main.get_command(command).commands)
    print(json.dumps({"commands": names, "modules": sorted(sys.modules)}))
""")

COMMAND_MODULES = (
    "dockyard.cli.admin",
    "dockyard.cli.images",
    "dockyard.cli.login",
    "dockyard.cli.signing",
    "dockyard.cli.attest",
    "dockyard.cli.policy",
    "dockyard.client.api",
    "httpx",
    "markdown_it",
    "yaml",
)


def _probe(*argv: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _loaded(modules: list[str], prefix: str) -> bool:
    return any(m == prefix or m.startswith(prefix + ".") for m in modules)


def test_serve_does_not_import_the_other_commands() -> None:
    seen = _probe("dockyard", "serve", "--listen", "127.0.0.1:1")
    assert "serve" in seen["commands"]
    assert [m for m in COMMAND_MODULES if _loaded(seen["modules"], m)] == []


def test_any_other_word_gets_every_command() -> None:
    for argv in (["dockyard", "user", "list"], ["dockyard", "--help"], ["dockyard"]):
        seen = _probe(*argv)
        assert {"serve", "user", "push", "login", "gc", "policy"} <= set(seen["commands"]), argv
        assert _loaded(seen["modules"], "dockyard.cli.admin")


def test_the_imported_app_is_the_whole_command_line() -> None:
    from dockyard.cli.main import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("serve", "user", "push", "pull", "token", "gc", "fsck", "attest"):
        assert command in result.stdout, command
