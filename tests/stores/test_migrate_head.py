"""A SQLite folder whose schema is current opens without Alembic (start-up of every command),
and one that is behind is still migrated: the head read from the revision files as text is
Alembic's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from alembic.script import ScriptDirectory

from dockyard.metadata.migrate import alembic_config, at_head, script_head, upgrade
from dockyard.metadata.sql import SQLMetadataStore, sqlite_engine


def test_the_head_read_as_text_is_alembic_s(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path / "metadata.db")
    scripts = ScriptDirectory.from_config(alembic_config(engine))
    assert script_head() == scripts.get_current_head()
    engine.dispose()


def test_a_folder_behind_is_migrated_and_one_at_head_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    engine = sqlite_engine(path)
    assert not at_head(engine), "an empty database has no revision"
    upgrade(engine, "0009")
    assert not at_head(engine)
    engine.dispose()
    store = SQLMetadataStore.open_sqlite(path)  # what every command does first
    engine = sqlite_engine(path)
    assert at_head(engine)
    with engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
        assert list(versions) == [script_head()]
        assert sa.inspect(conn).has_table("repository_info"), "0010 ran"
    engine.dispose()
    upgrade(sqlite_engine(path))  # at head: nothing to do, nothing fails
    del store


def test_opening_a_current_folder_loads_no_alembic(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    SQLMetadataStore.open_sqlite(path)  # creates and migrates
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from dockyard.metadata.sql import SQLMetadataStore\n"
        f"SQLMetadataStore.open_sqlite(Path({str(path)!r}))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
