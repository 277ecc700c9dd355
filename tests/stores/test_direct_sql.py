"""Prebuilt statements run on SQLite's cursor give what SQLAlchemy would have given."""

from __future__ import annotations

import collections
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from dockyard.metadata import direct
from dockyard.metadata.base import ManifestRecord
from dockyard.metadata.sql import SQLMetadataStore

METADATA = sa.MetaData()
THINGS = sa.Table(
    "things",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(50), nullable=False, unique=True),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("ready", sa.Boolean, nullable=False),
    sa.Column("stamp", sa.Float, default=time.time),  # computed in Python: SQLAlchemy's job
)
INSERT = sa.insert(THINGS)
INSERT_IGNORE = sqlite.insert(THINGS).on_conflict_do_nothing()
BY_NAME = sa.select(THINGS.c.id, THINGS.c.weight, THINGS.c.ready).where(
    THINGS.c.name == sa.bindparam("name")
)
ANY_READY = sa.select(sa.exists().where(THINGS.c.ready == sa.true()))
HEAVIER = (
    sa.update(THINGS).where(THINGS.c.name == sa.bindparam("who")).values(weight=THINGS.c.weight + 1)
)
NAMED_IN = sa.select(THINGS.c.name).where(THINGS.c.name.in_(sa.bindparam("names", expanding=True)))


@pytest.fixture
def conn(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'things.db'}")
    METADATA.create_all(engine)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def counted(conn) -> collections.Counter:
    seen: collections.Counter = collections.Counter()
    sa.event.listen(
        conn.engine, "before_cursor_execute", lambda *args: seen.update([args[2].split()[0]])
    )
    return seen


def test_rows_and_conversions_match_sqlalchemy(conn) -> None:
    seen = counted(conn)
    row = {"id": 1, "name": "a", "weight": 2, "ready": True, "stamp": 1.0}
    direct.execute(conn, INSERT, row)
    direct.execute(conn, INSERT_IGNORE, {**row, "weight": 9})  # ignored
    direct.execute(
        conn, INSERT, {"id": 2, "name": "b", "weight": 3.5, "ready": False, "stamp": 2.0}
    )
    assert seen == {}, "statements built once ran through SQLAlchemy"
    got = direct.execute(conn, BY_NAME, {"name": "a"}).first()
    assert got == conn.execute(BY_NAME, {"name": "a"}).first() == (1, 2.0, True)
    assert type(got[1]) is float and got[2] is True, "the dialect's conversions apply"
    assert direct.execute(conn, BY_NAME, {"name": "zz"}).first() is None
    assert direct.execute(conn, BY_NAME, {"name": "b"}).scalar() == 2
    assert direct.execute(conn, ANY_READY, {}).scalar() is True
    assert direct.execute(conn, HEAVIER, {"who": "b"}).rowcount == 1
    assert direct.execute(conn, HEAVIER, {"who": "nobody"}).rowcount == 0
    assert list(
        direct.execute(conn, sa.select(THINGS.c.name).order_by(THINGS.c.name), {}).scalars()
    ) == ["a", "b"]
    with pytest.raises(sa.exc.NoResultFound):
        direct.execute(conn, BY_NAME, {"name": "zz"}).scalar_one()
    assert seen == {"SELECT": 1}, "only the comparison ran through SQLAlchemy"


def test_what_needs_sqlalchemy_goes_through_it(conn) -> None:
    seen = counted(conn)
    direct.execute(conn, INSERT, {"name": "c", "weight": 1, "ready": True})  # stamp defaulted
    assert seen == {"INSERT": 1}
    assert conn.execute(sa.select(THINGS.c.stamp)).scalar() > 0
    assert direct.execute(conn, NAMED_IN, {"names": ["c", "d"]}).scalars().all() == ["c"]
    assert seen == {"INSERT": 1, "SELECT": 2}


def test_errors_are_sqlalchemys(conn) -> None:
    direct.execute(conn, INSERT, {"id": 1, "name": "a", "weight": 1, "ready": True, "stamp": 0})
    with pytest.raises(sa.exc.IntegrityError):
        direct.execute(conn, INSERT, {"id": 2, "name": "a", "weight": 1, "ready": True, "stamp": 0})
    with pytest.raises(sa.exc.OperationalError):
        direct.run_sql(conn, "BEGIN NONSENSE")


def test_a_push_runs_no_statement_through_sqlalchemy(tmp_path, run) -> None:
    """The statements of a push, and of a pull's lookups, all take the direct path."""
    store = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    try:
        assert store.runner.engine is not None
        seen = counted_engine(store.runner.engine)
        layer, config, manifest = ("sha256:" + c * 64 for c in "123")
        for digest in (layer, config):
            upload = digest[-32:]
            run(store.create_upload(upload, "team/app", 1.0))
            assert run(store.get_upload(upload)).size == 0
            assert run(store.advance_upload(upload, 0, 10, 2.0))
            run(store.complete_upload(upload, "team/app", digest, 10))
            assert run(store.linked_blob_size("team/app", digest)) == 10
        record = ManifestRecord(digest=manifest, media_type="application/json", size=5)
        run(store.put_manifest("team/app", record, [], ["v1"], immutable_checked=True))
        assert run(store.resolve_tag("team/app", "v1")).digest == manifest
        assert run(store.get_manifest("team/app", manifest)).size == 5
        assert run(store.blob_size(manifest)) == 5
        assert seen == {}, f"ran through SQLAlchemy: {seen}"
    finally:
        run(store.close())


def counted_engine(engine: sa.Engine) -> collections.Counter:
    seen: collections.Counter = collections.Counter()
    sa.event.listen(
        engine, "before_cursor_execute", lambda *args: seen.update([" ".join(args[2].split()[:3])])
    )
    return seen
