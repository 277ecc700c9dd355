"""Frozen records whose fields are checked and converted when one is made.

The settings are such records: their values arrive as YAML scalars, environment strings or
flags, and must become the declared types, or be refused with the key and the reason. The
conversions and messages are pydantic's lax mode (the settings were a pydantic model, and
what was accepted or refused then still is; `tests/unit/test_settings_fields.py` compares
the two), without loading pydantic into the serving process before its first answer.

A record is a `dataclasses.dataclass(frozen=True, init=False)` subclass of `Record` whose
fields come from `field(...)`: default, description, bounds and a check of the converted
value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

_BAD: Any = object()  # a value that could not be converted; its problem is recorded
_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_INTEGER = re.compile(r"[+-]?\d+(?:_\d+)*(?:\.0*)?")


@dataclasses.dataclass(frozen=True)
class Problem:
    """One refused value: where (field names and list positions) and why."""

    loc: tuple[str | int, ...]
    msg: str


class InvalidFields(ValueError):
    """A record could not be made; `problems` lists every refused value, in field order."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in problems))
        self.problems = problems

    def errors(self) -> list[dict[str, Any]]:
        return [{"loc": p.loc, "msg": p.msg} for p in self.problems]


def field(
    default: Any = dataclasses.MISSING,
    description: str = "",
    *,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    check: Callable[[Any], Any] | None = None,
) -> Any:
    """A field of a record: `check` receives the converted value (after the bounds) and
    returns it, possibly normalised, or raises ValueError with the reason."""
    metadata = {"description": description, "ge": ge, "gt": gt, "le": le, "check": check}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


class _FieldTable:
    """`Record.model_fields`: the record's fields by name, in declaration order."""

    def __get__(self, instance: object, owner: type) -> dict[str, dataclasses.Field[Any]]:
        return {f.name: f for f in dataclasses.fields(owner)}


class Record:
    """Base of the checked records; `Record(**values)` converts and checks every value."""

    model_fields: ClassVar[Any] = _FieldTable()

    def __init__(self, **values: Any) -> None:
        for name, value in _validated(type(self), values, ()).items():
            object.__setattr__(self, name, value)

    @classmethod
    def model_validate(cls, data: Any) -> Any:
        """A record from a mapping (as `model_dump` gives), checked as the constructor does."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise InvalidFields([Problem((), _not_a_mapping(cls))])
        return cls(**data)

    def model_dump(self, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
        """Every field by name; nested records as mappings, and for "json" paths as text."""
        return {f.name: _dumped(getattr(self, f.name), mode) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def model_copy(self, update: dict[str, Any] | None = None) -> Any:
        """A copy with some fields replaced, unchecked: the values come from a checked record."""
        copy = object.__new__(type(self))
        copy.__dict__.update(self.__dict__)
        copy.__dict__.update(update or {})
        return copy


def _dumped(value: Any, mode: str) -> Any:
    if isinstance(value, Record):
        return value.model_dump(mode)  # type: ignore[arg-type]
    if isinstance(value, list):
        return [_dumped(item, mode) for item in value]
    if mode == "json" and isinstance(value, Path):
        return str(value)
    return value


_hints_of: dict[type, dict[str, Any]] = {}


def _hints(record: type) -> dict[str, Any]:
    hints = _hints_of.get(record)
    if hints is None:
        hints = _hints_of[record] = typing.get_type_hints(record)
    return hints


def list_fields(record: type) -> frozenset[str]:
    """The names of the record's fields that hold lists."""
    return frozenset(
        name for name, hint in _hints(record).items() if typing.get_origin(hint) is list
    )


def _not_a_mapping(record: type) -> str:
    return f"Input should be a valid dictionary or instance of {record.__name__}"


def _validated(record: type, values: dict[str, Any], loc: tuple[str | int, ...]) -> dict[str, Any]:
    hints = _hints(record)
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    fields = dataclasses.fields(record)
    for f in fields:
        where = (*loc, f.name)
        if f.name not in values:
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                problems.append(Problem(where, "Field required"))
            continue
        value = _converted(hints[f.name], values[f.name], where, problems)
        if value is not _BAD:
            value = _checked(f.metadata, value, where, problems)
        out[f.name] = value
    known = {f.name for f in fields}
    problems += [
        Problem((*loc, name), "Extra inputs are not permitted")
        for name in values
        if name not in known
    ]
    if problems:
        raise InvalidFields(problems)
    return out


def _checked(
    rules: typing.Mapping[str, Any],
    value: Any,
    where: tuple[str | int, ...],
    problems: list[Problem],
) -> Any:
    if value is None:
        return None
    # In pydantic's order, which shows when a value fails two (NaN).
    for bound, words in (
        ("le", "less than or equal to"),
        ("ge", "greater than or equal to"),
        ("gt", "greater than"),
    ):
        limit = rules.get(bound)
        if limit is not None and not _within(bound, value, limit):
            problems.append(Problem(where, f"Input should be {words} {limit}"))
            return _BAD
    check = rules.get("check")
    if check is not None:
        try:
            return check(value)
        except ValueError as exc:
            problems.append(Problem(where, f"Value error, {exc}"))
            return _BAD
    return value


def _within(bound: str, value: Any, limit: float) -> bool:
    # Written as the bound reads: NaN fails every one of them.
    if bound == "ge":
        return bool(value >= limit)
    if bound == "gt":
        return bool(value > limit)
    return bool(value <= limit)


def _converted(hint: Any, raw: Any, where: tuple[str | int, ...], problems: list[Problem]) -> Any:
    """`raw` as the type `hint` names, or _BAD with its problem recorded."""
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if raw is None:
            return None
        return _converted(inner[0], raw, where, problems)
    if origin is Literal:
        choices = typing.get_args(hint)
        for choice in choices:
            if type(raw) is type(choice) and raw == choice:
                return choice
        shown = [repr(c) for c in choices]
        listed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
        return _refuse(problems, where, f"Input should be {listed}")
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(raw, (list, tuple, set, frozenset)):
            return _refuse(problems, where, "Input should be a valid list")
        items = [_converted(item, v, (*where, i), problems) for i, v in enumerate(raw)]
        return _BAD if any(v is _BAD for v in items) else items
    if isinstance(hint, type) and issubclass(hint, Record):
        if isinstance(raw, hint):
            return raw
        if not isinstance(raw, dict):
            return _refuse(problems, where, _not_a_mapping(hint))
        try:
            values = _validated(hint, raw, where)
        except InvalidFields as exc:
            problems += exc.problems
            return _BAD
        made = object.__new__(hint)
        made.__dict__.update(values)
        return made
    convert = _SCALARS[hint]
    try:
        return convert(raw)
    except _Refused as exc:
        return _refuse(problems, where, str(exc))


def _refuse(problems: list[Problem], where: tuple[str | int, ...], msg: str) -> Any:
    problems.append(Problem(where, msg))
    return _BAD


class _Refused(Exception):
    """A scalar that cannot be converted; the message is the problem."""


def _to_str(raw: Any) -> str:
    if isinstance(raw, str):
        return str(raw)
    if isinstance(raw, (bytes, bytearray)):
        try:
            return bytes(raw).decode()
        except UnicodeDecodeError:
            raise _Refused(
                "Input should be a valid string, unable to parse raw data as a unicode string"
            ) from None
    raise _Refused("Input should be a valid string")


def _as_text(raw: Any, refusal: str) -> Any:
    """Bytes read as text, as a number or a boolean written in them (YAML's !!binary)."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            return bytes(raw).decode()
        except UnicodeDecodeError:
            raise _Refused(refusal) from None
    return raw


def _to_int(raw: Any) -> int:
    raw = _as_text(raw, "Input should be a valid integer, unable to parse string as an integer")
    if isinstance(raw, int):
        return int(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise _Refused("Input should be a finite number")
        if raw.is_integer():
            return int(raw)
        raise _Refused("Input should be a valid integer, got a number with a fractional part")
    if isinstance(raw, str):
        text = raw.strip()
        if _INTEGER.fullmatch(text):
            return int(text.partition(".")[0])
        raise _Refused("Input should be a valid integer, unable to parse string as an integer")
    raise _Refused("Input should be a valid integer")


def _to_float(raw: Any) -> float:
    raw = _as_text(raw, "Input should be a valid number, unable to parse string as a number")
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            raise _Refused(
                "Input should be a valid number, unable to parse string as a number"
            ) from None
    raise _Refused("Input should be a valid number")


def _to_bool(raw: Any) -> bool:
    raw = _as_text(raw, "Input should be a valid boolean, unable to interpret input")
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, (int, str)):
        word = str(raw).lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise _Refused("Input should be a valid boolean, unable to interpret input")
    if isinstance(raw, float) and raw.is_integer():
        return _to_bool(int(raw))
    raise _Refused("Input should be a valid boolean")


def _to_path(raw: Any) -> Path:
    if isinstance(raw, (str, os.PathLike)) and not isinstance(raw, bytes):
        return Path(raw)
    raise _Refused("Input is not a valid path for <class 'pathlib.Path'>")


_SCALARS: dict[Any, Callable[[Any], Any]] = {
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    Path: _to_path,
}
