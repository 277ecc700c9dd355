"""Opening a SQLite folder whose schema is current skips Alembic (every server start, every
admin command); one that is behind, or that cannot be read at once, still goes through Alembic."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from dockyard.metadata.migrate import (
    alembic_config,
    at_head,
    script_head,
    sqlite_revisions,
    upgrade,
)
from dockyard.metadata.sqlite_runner import sqlite_engine

OPEN_AND_LIST_ALEMBIC = (
    "import json, sys\n"
    "from pathlib import Path\n"
    "from dockyard.metadata.sql import SQLMetadataStore\n"
    "SQLMetadataStore.open_sqlite(Path(sys.argv[1]))\n"
    "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic')))\n"
)


def _alembic_modules_when_opening(path: Path) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", OPEN_AND_LIST_ALEMBIC, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_head_read_from_the_revision_files_is_alembic_s(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "metadata.db")
    assert script_head() == ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    engine.dispose()


def test_a_current_folder_opens_without_alembic(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    assert _alembic_modules_when_opening(path) != [], "a new file is made by Alembic"
    assert sqlite_revisions(path) == [script_head()]
    assert _alembic_modules_when_opening(path) == []


def test_a_folder_behind_is_migrated_by_alembic(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    engine = sqlite_engine(path)
    upgrade(engine, "0009")
    assert not at_head(engine)
    engine.dispose()
    assert "alembic.command" in _alembic_modules_when_opening(path)
    assert sqlite_revisions(path) == [script_head()]
    with sqlite3.connect(path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert {"repository_info", "tag_history"} <= tables, "the revisions after 0009 ran"


def test_a_locked_or_unmigrated_file_is_left_to_alembic(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    assert sqlite_revisions(path) is None, "no file"
    holder = sqlite3.connect(path, isolation_level=None)
    assert sqlite_revisions(path) is None, "no revision table"
    holder.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    holder.execute("INSERT INTO alembic_version VALUES (?)", (script_head(),))
    assert sqlite_revisions(path) == [script_head()]
    # Another process creating or migrating the file holds it (before it is in WAL mode):
    # the look gives up after a moment instead of failing, and Alembic, which waits its
    # turn, decides.
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert sqlite_revisions(path) is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert sqlite_revisions(path) == [script_head()]


def test_only_sqlite_files_are_looked_at(tmp_path: Path) -> None:
    memory = sa.create_engine("sqlite://")
    assert not at_head(memory)
    memory.dispose()
