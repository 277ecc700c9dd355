"""Dockyard: a container image registry server and a daemonless client."""

import sys

# httpx imports its own command line (click, rich's console and progress, pygments' lexers)
# whenever those libraries are installed, as they are here for Typer and granian: a large part
# of the start of every `dockyard` command that speaks HTTP (bench/README.md), for a program
# never run from this process. An entry of None makes that import fail, and httpx then leaves
# its command line out.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__version__ = "0.1.0"
__all__ = ["__version__"]
