"""What a `dockyard serve` loads on a data folder that already holds a registry: the server's
modules, not the command-line libraries (Typer, click), not pydantic, not SQLAlchemy's ORM,
not Alembic (only a folder whose schema is behind needs it), not YAML (only a --config file
does). Each of them was tens of milliseconds of every start before the first answer.

The server runs as it does anywhere, with Python's own import report on
(PYTHONPROFILEIMPORTTIME): every module any of its processes imports, from the exec to the
first answer and the stop, is a line of its log (but for a module named to
`importlib.import_module` itself, which the report leaves out; what it imports is in)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.support.server import RunningRegistry, free_port

NOT_LOADED = (
    "pydantic",
    "pydantic_core",
    "typer",
    "click",
    "sqlalchemy.orm",
    "alembic",
    "yaml",
    "encodings.idna",
)
IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|( *)(\S+)$", re.MULTILINE)


def _imported(log: str) -> set[str]:
    return {match.group(2) for match in IMPORT_LINE.finditer(log)}


def _loaded(modules: set[str], name: str) -> bool:
    return any(m == name or m.startswith(name + ".") for m in modules)


def _serve_once(data_dir: Path, *args: str) -> set[str]:
    server = RunningRegistry(
        data_dir=data_dir,
        port=free_port(),
        args=args,
        env={"PYTHONPROFILEIMPORTTIME": "1"},
        log_dir=data_dir.parent,
    )
    server.start()
    try:
        assert httpx.get(server.url + "/v2/").status_code == 200
    finally:
        server.stop()
    return _imported(server.log())


def test_serve_on_an_existing_folder_loads_no_cli_or_orm_libraries(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = _serve_once(data, "--workers", "1")  # creates the registry and migrates it
    assert _loaded(first, "dockyard.metadata.sql"), "the import report is not in the log"
    again = _serve_once(data, "--workers", "2", "--no-ui", "--gc-grace-seconds", "0")
    assert _loaded(again, "dockyard.api.routes") and _loaded(again, "sqlalchemy.engine")
    assert [name for name in NOT_LOADED if _loaded(again, name)] == []


def test_serve_help_still_comes_from_typer(tmp_path: Path) -> None:
    """Anything the fast reading does not take (here --help) goes to the Typer command."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "serve", "--listen", "127.0.0.1:1", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0
    assert "Usage:" in result.stdout and "--gc-untagged-manifests" in result.stdout
