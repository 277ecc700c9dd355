"""Disabling and enabling accounts on every database: the mark is kept and cleared, nothing
else of the account changes, and the last enabled administrator is never disabled, not even
by two administrators disabling each other at once."""

from __future__ import annotations

import asyncio

from dockyard.metadata.accounts import ORG, USER


def add(meta, run, name: str, *, admin: bool = False, kind: str = USER) -> None:
    run(
        meta.accounts.create_account(
            name, kind, "$2b$12$hash" if kind == USER else None, admin, 1.0
        )
    )


def test_disabling_marks_the_account_and_enabling_clears_it(meta, run) -> None:
    accounts = meta.accounts
    add(meta, run, "admin", admin=True)
    add(meta, run, "bob")
    before = run(accounts.get_account("bob"))
    version = run(accounts.access_version())
    assert before.disabled_at is None

    assert run(accounts.set_disabled("bob", 50.0)) is True
    disabled = run(accounts.get_account("bob"))
    assert disabled.disabled_at == 50.0
    # Nothing else of the account moves: enabling must restore its tokens and sessions.
    assert disabled.password_hash == before.password_hash
    assert disabled.credentials_changed_at == before.credentials_changed_at
    assert disabled.grants_changed_at == before.grants_changed_at
    assert run(accounts.access_version()) != version, "workers must drop what they remember"
    assert {a.name: a.disabled_at for a in run(accounts.list_accounts(USER))} == {
        "admin": None,
        "bob": 50.0,
    }

    assert run(accounts.set_disabled("bob", 60.0)) is True
    assert run(accounts.get_account("bob")).disabled_at == 50.0, "disabled since the first time"
    assert run(accounts.set_disabled("bob", None)) is True
    assert run(accounts.get_account("bob")).disabled_at is None
    assert run(accounts.set_disabled("bob", None)) is True  # already enabled


def test_only_existing_users_are_disabled(meta, run) -> None:
    accounts = meta.accounts
    add(meta, run, "admin", admin=True)
    add(meta, run, "acme", kind=ORG)
    assert run(accounts.set_disabled("nobody", 5.0)) is False
    assert run(accounts.set_disabled("acme", 5.0)) is False
    assert run(accounts.get_account("acme")).disabled_at is None
    assert run(accounts.set_disabled("x" * 300, 5.0)) is False


def test_the_last_enabled_administrator_stays_enabled(meta, run) -> None:
    accounts = meta.accounts
    add(meta, run, "root", admin=True)
    add(meta, run, "ops", admin=True)
    add(meta, run, "bob")
    assert run(accounts.set_disabled("root", 5.0)) is True
    assert run(accounts.set_disabled("ops", 6.0)) is None
    assert run(accounts.get_account("ops")).disabled_at is None
    assert run(accounts.set_disabled("bob", 7.0)) is True  # users are not counted
    assert run(accounts.set_disabled("root", None)) is True
    assert run(accounts.set_disabled("ops", 8.0)) is True


async def both(accounts, first: str, second: str) -> list[bool | None]:
    return await asyncio.gather(
        accounts.set_disabled(first, 2.0), accounts.set_disabled(second, 2.0)
    )


def test_two_administrators_disabling_each_other_at_once_leave_one_enabled(meta, run) -> None:
    accounts = meta.accounts
    for round_no in range(5):
        first, second = f"first-{round_no}", f"second-{round_no}"
        add(meta, run, first, admin=True)
        add(meta, run, second, admin=True)
        for name in {a.name for a in run(accounts.list_accounts(USER))} - {first, second}:
            run(accounts.set_disabled(name, 1.0))

        results = run(both(accounts, first, second))
        assert sorted(results, key=str) == [None, True], results
        enabled = [
            a.name
            for a in run(accounts.list_accounts(USER))
            if a.is_admin and a.disabled_at is None
        ]
        assert len(enabled) == 1, enabled


def test_revision_0011_leaves_every_existing_account_enabled(tmp_path) -> None:
    import sqlalchemy as sa

    from dockyard.metadata.migrate import upgrade
    from dockyard.metadata.sql import sqlite_engine

    engine = sqlite_engine(tmp_path / "metadata.db")
    upgrade(engine, "0010")
    with engine.begin() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("accounts")}
        if "disabled_at" in columns:  # 0002 made `accounts` from today's schema module
            conn.execute(sa.text("ALTER TABLE accounts DROP COLUMN disabled_at"))
        conn.execute(
            sa.text(
                "INSERT INTO accounts (name, kind, is_admin, credentials_changed_at, created_at)"
                " VALUES ('old', 'user', 0, 1, 1)"
            )
        )
    upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, disabled_at FROM accounts")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("old", None)]
