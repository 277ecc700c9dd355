"""The `dockyard` command: `dockyard serve` with a plain command line starts the server
without loading the command-line libraries (`cli/serve_argv.py`); everything else, and any
`serve` command line that is not plain, goes to the Typer application (`cli/commands.py`).

`app`, `app_for` and the other names of the Typer application are found here too, loaded on
first use."""

from __future__ import annotations

import gc
import sys
from typing import Any


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        # The server's imports free nothing a collection would find, yet some 130 automatic
        # collections ran during them, on the way to the first answer; the serving process
        # collects again once what its workers inherit is frozen (`serve.share_with_workers`).
        gc.disable()
        from dockyard.cli.serve_argv import read

        options = read(sys.argv[2:])
        if options is not None:
            _serve(options)
            return
        gc.enable()
    from dockyard.cli.commands import main as typer_main

    typer_main()


def _serve(options: dict[str, Any]) -> None:
    """Serve as the Typer command would, with its exit statuses: its messages come as
    `typer.Exit` (`cli/exits.py`), which only a loaded Typer can have raised."""
    from dockyard.cli.exits import INTERRUPTED
    from dockyard.cli.serve_entry import serve_with
    from dockyard.core.native_threads import settle

    try:
        serve_with(**options)
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    except Exception as exc:
        typer = sys.modules.get("typer")
        if typer is not None and isinstance(exc, typer.Exit):
            sys.exit(exc.exit_code)
        raise
    finally:
        # As `cli.commands.main`: obstore's threads must not see the interpreter finalise.
        settle()


def __getattr__(name: str) -> Any:
    # `from dockyard.cli.main import app` (tests, embedders), `app_for`, `root_app`, ….
    # Not the import system's own questions (`__path__` on every `from … import main`).
    if name.startswith("__"):
        raise AttributeError(name)
    from dockyard.cli import commands

    return getattr(commands, name)
