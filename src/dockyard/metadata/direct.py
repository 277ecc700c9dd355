"""Prebuilt Core statements run straight on SQLite's cursor.

SQLAlchemy's execution path (execution context, events, result objects) costs about 20 us a
statement where sqlite3 itself takes 2-3 us, and a small image's push runs about twenty. A
statement built once is compiled here once per set of parameter names, and then run on the
DBAPI cursor, provided nothing in it needs SQLAlchemy while it runs: no type conversion of
parameters or results, no defaults computed in Python, no expanding parameters, no RETURNING.
Anything else, and every statement on PostgreSQL, goes through `Connection.execute`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# (id of the statement, its parameter names) -> (the statement, kept alive; its plan or None)
_PLANS: dict[tuple[int, tuple[str, ...]], tuple[sa.Executable, _Plan | None]] = {}
_MAX_PLANS = 512  # statements built per call never fill it: past this, no more are planned


Convert = Callable[[Any], Any]


class _Plan:
    __slots__ = ("results", "slots", "sql")

    def __init__(
        self,
        sql: str,
        slots: list[tuple[str | None, Any, Convert | None]],
        results: list[Convert | None] | None,
    ) -> None:
        self.sql = sql
        # per `?`: (parameter name, None, conversion) or (None, constant value, None)
        self.slots = slots
        self.results = results  # per result column, its conversion; None when none has one

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        args = []
        for name, constant, convert in self.slots:
            if name is None:
                args.append(constant)
            else:
                value = params[name]
                args.append(value if convert is None or value is None else convert(value))
        return args


class Rows:
    """The part of SQLAlchemy's result the metadata store uses, over a sqlite3 cursor."""

    __slots__ = ("_converts", "_cursor")

    def __init__(self, cursor: sqlite3.Cursor, converts: list[Convert | None] | None) -> None:
        self._cursor = cursor
        self._converts = converts

    def _row(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        if self._converts is None:
            return row
        return tuple(
            value if convert is None or value is None else convert(value)
            for value, convert in zip(row, self._converts, strict=True)
        )

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def first(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        self._cursor.close()
        return None if row is None else self._row(row)

    def scalar(self) -> Any:
        row = self.first()
        return None if row is None else row[0]

    def scalar_one(self) -> Any:
        row = self.first()
        if row is None:
            raise sa.exc.NoResultFound("No row was found when one was required")
        return row[0]

    def all(self) -> list[tuple[Any, ...]]:
        return [self._row(row) for row in self._cursor]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return (self._row(row) for row in self._cursor)

    def scalars(self) -> Iterator[Any]:
        return (row[0] for row in self)


def execute(conn: Connection, stmt: sa.Executable, params: Mapping[str, Any]) -> Any:
    """`conn.execute(stmt, params)` for a statement built once (a class attribute or a
    `_prepared` one): on SQLite its rows come back as plain tuples."""
    if conn.dialect.name != "sqlite":
        return conn.execute(stmt, params)
    key = (id(stmt), tuple(params))
    entry = _PLANS.get(key)
    if entry is None:
        plan = _plan(conn, stmt, params)
        if len(_PLANS) < _MAX_PLANS:
            _PLANS[key] = (stmt, plan)
    else:
        plan = entry[1]
    if plan is None:
        return conn.execute(stmt, params)
    args = plan.arguments(params)
    raw = conn.connection.driver_connection
    try:
        return Rows(raw.execute(plan.sql, args), plan.results)  # type: ignore[union-attr]
    except sqlite3.Error as exc:
        # The same exception classes SQLAlchemy raises (callers tell "locked", "full" and
        # broken connections apart by them).
        raise sa.exc.DBAPIError.instance(plan.sql, args, exc, sqlite3.Error) from exc


def run_sql(conn: Connection, sql: str) -> None:
    """A statement without parameters (BEGIN), on the DBAPI connection."""
    try:
        conn.connection.driver_connection.execute(sql)  # type: ignore[union-attr]
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(sql, (), exc, sqlite3.Error) from exc


def _plan(conn: Connection, stmt: sa.Executable, params: Mapping[str, Any]) -> _Plan | None:
    dialect = conn.dialect
    compiled: Any = cast(sa.ClauseElement, stmt).compile(dialect=dialect, column_keys=list(params))
    if (
        compiled.positiontup is None
        or "POSTCOMPILE" in compiled.string
        or compiled.insert_prefetch
        or compiled.update_prefetch
        or compiled.effective_returning
    ):
        return None
    converts = compiled._bind_processors
    slots: list[tuple[str | None, Any, Convert | None]] = []
    for name in compiled.positiontup:
        if name in params:
            slots.append((name, None, converts.get(name)))
            continue
        bind = compiled.binds[name]
        if bind.callable is not None or (bind.value is None and bind.required):
            return None
        value = bind.effective_value
        convert = converts.get(name)
        slots.append((None, value if convert is None or value is None else convert(value), None))
    results = [
        entry.type._cached_result_processor(dialect, None) for entry in compiled._result_columns
    ]
    return _Plan(
        compiled.string, slots, results if any(convert is not None for convert in results) else None
    )
