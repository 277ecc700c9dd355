"""The layers stay apart: the import-linter contracts in pyproject.toml hold for the package, and
they catch a forbidden import when one appears."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dockyard

PACKAGE = Path(dockyard.__file__).parent
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def lint_imports(source_root: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """Run `lint-imports` on the `dockyard` package found under `source_root`."""
    shutil.copy(PYPROJECT, workdir / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo"]
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_package_keeps_every_contract(tmp_path: Path) -> None:
    result = lint_imports(PACKAGE.parent, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_import_from_storage_into_metadata_breaks_the_check(tmp_path: Path) -> None:
    source_root = tmp_path / "src"
    copy = source_root / "dockyard"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    schema = copy / "metadata" / "schema.py"
    schema.write_text(schema.read_text() + "\nfrom dockyard.storage.base import BlobStore\n")
    result = lint_imports(source_root, tmp_path)
    assert result.returncode != 0
    assert "dockyard.metadata is not allowed to import dockyard.storage" in result.stdout
    assert "dockyard.metadata.schema -> dockyard.storage.base" in result.stdout


def test_sql_in_the_web_pages_breaks_the_check(tmp_path: Path) -> None:
    source_root = tmp_path / "src"
    copy = source_root / "dockyard"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    page = copy / "web" / "pages" / "browse.py"
    page.write_text(page.read_text() + "\nfrom dockyard.metadata import catalog\n")
    result = lint_imports(source_root, tmp_path)
    assert result.returncode != 0
    assert "dockyard.web.pages.browse -> dockyard.metadata.catalog" in result.stdout
