"""The transaction runner contract, on both backends: what every query module relies on."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dockyard.metadata import schema as t


def repository_names(conn) -> list[str]:  # type: ignore[no-untyped-def]
    return list(conn.execute(sa.select(t.repositories.c.name).order_by("name")).scalars())


def test_a_write_commits_and_a_read_sees_it(meta, run) -> None:
    runner = meta.runner

    def insert(conn) -> str:  # type: ignore[no-untyped-def]
        conn.execute(sa.insert(t.repositories).values(name="runner/a", created_at=1.0))
        return "written"

    assert run(runner.write(insert)) == "written"
    assert run(runner.read(repository_names)) == ["runner/a"]
    assert run(runner.read(repository_names, inline=True)) == ["runner/a"]
    assert run(runner.write(repository_names, durable=False)) == ["runner/a"]


def test_a_failing_write_leaves_nothing_and_makes_the_store_forget(meta, run) -> None:
    runner = meta.runner
    forgotten: list[str] = []
    runner.on_abort(lambda: forgotten.append("ids"))
    run(meta.link_blob("runner/kept", "sha256:" + "1" * 64, 1))

    def half_then_fail(conn) -> None:  # type: ignore[no-untyped-def]
        conn.execute(sa.insert(t.repositories).values(name="runner/ghost", created_at=1.0))
        raise ValueError("changed its mind")

    with pytest.raises(ValueError, match="changed its mind"):
        run(runner.write(half_then_fail))
    assert run(runner.read(repository_names)) == ["runner/kept"]
    if not runner.shared:  # SQLite abandons the transaction; PostgreSQL only forgets to retry
        assert forgotten == ["ids"]


def test_a_conflicting_write_runs_again_where_replicas_share_the_database(meta, run) -> None:
    """A serialization failure is retried where replicas share the database; on SQLite the
    writer turns keep writes from ever conflicting, and an error is the caller's."""
    runner = meta.runner
    forgotten: list[str] = []
    runner.on_abort(lambda: forgotten.append("ids"))
    attempts: list[int] = []

    class Conflict(Exception):
        sqlstate = "40001"

    def conflicts_once(conn) -> int:  # type: ignore[no-untyped-def]
        attempts.append(1)
        if len(attempts) == 1:
            raise sa.exc.DBAPIError("UPDATE", {}, Conflict("could not serialize access"))
        return len(attempts)

    if runner.shared:
        assert run(runner.write(conflicts_once)) == 2
        assert forgotten == ["ids"]
    else:
        with pytest.raises(sa.exc.DBAPIError):
            run(runner.write(conflicts_once))
        assert len(attempts) == 1


def test_schema_and_content_lock_follow_the_backend(meta, run) -> None:
    assert run(meta.has_schema()) is True
    run(meta.migrate())  # up to date already: nothing to do, on either backend
    lock = meta.shared_content_lock()
    assert meta.shared is (lock is not None)
