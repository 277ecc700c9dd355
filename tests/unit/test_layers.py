"""The layers stay apart: each package imports only what sits below it."""

from __future__ import annotations

import ast
from pathlib import Path

import dockyard

ROOT = Path(dockyard.__file__).parent

# package -> the packages of ours it may import (itself always allowed)
ALLOWED = {
    "core": set(),
    "config": {"core"},
    "storage": {"core", "config"},
    "metadata": {"core", "config"},
    # The composition root (service/registry.py) builds the pull-through cache when configured.
    "service": {"core", "config", "storage", "metadata", "proxy"},
    # The pull-through cache wraps the service's repositories and reaches upstreams as a client.
    "proxy": {"core", "config", "storage", "metadata", "service", "client"},
    "auth": {"core", "config", "service", "proxy"},
    "api": {"core", "config", "service", "auth"},
    "client": {"core"},
    # Puts the registry together: above service and auth, below api and cli.
    "assembly": {"core", "config", "storage", "metadata", "service", "auth"},
    "cli": {
        "core", "config", "service", "auth", "api", "client", "storage", "metadata", "assembly"
    },
}


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dockyard"):
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if alias.name.startswith("dockyard")]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if len(parts) > 1:
                found.add(parts[1])
    return found


def test_layering() -> None:
    problems = []
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT)
        package = relative.parts[0].removesuffix(".py") if len(relative.parts) > 1 or \
            relative.stem in ("config", "assembly") else None
        if package is None or package not in ALLOWED:
            continue
        for imported in imported_packages(path) - {package} - {"__version__"}:
            if imported not in ALLOWED[package]:
                problems.append(f"{relative} imports dockyard.{imported}")
    assert problems == []
