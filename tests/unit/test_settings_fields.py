"""The settings are checked by `dockyard.core.fields`, not by pydantic (which the serving
process no longer loads); what is accepted, what it becomes and what is refused with which
message must stay what pydantic's lax mode gave when the settings were a pydantic model.

The oracle is that model, rebuilt here from the same field table (types, defaults, bounds,
checks): every field is given every value of a list of awkward inputs, through both."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from dockyard.config import ConfigError, Settings, Upstream, load_settings
from dockyard.core.fields import InvalidFields, Record, list_fields


def _twin_hint(hint: Any, twins: dict[type, type[BaseModel]]) -> Any:
    if isinstance(hint, type) and issubclass(hint, Record):
        return twins[hint]
    origin = typing.get_origin(hint)
    if origin is list:
        return list[_twin_hint(typing.get_args(hint)[0], twins)]  # type: ignore[misc]
    return hint


def _twin(record: type, twins: dict[type, type[BaseModel]]) -> type[BaseModel]:
    """The pydantic model the record was: same names, types, defaults, bounds and checks."""
    hints = typing.get_type_hints(record)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        rules = f.metadata
        bounds = {k: rules[k] for k in ("ge", "gt", "le") if rules.get(k) is not None}
        extra: list[Any] = [Field(**bounds)] if bounds else []
        if rules.get("check") is not None:
            extra.append(AfterValidator(rules["check"]))
        hint = _twin_hint(hints[f.name], twins)
        annotated = Annotated[(hint, *extra)] if extra else hint  # type: ignore[valid-type]
        if f.default is not dataclasses.MISSING:
            fields[f.name] = (annotated, f.default)
        elif f.default_factory is not dataclasses.MISSING:
            fields[f.name] = (annotated, Field(default_factory=f.default_factory))
        else:
            fields[f.name] = (annotated, ...)
    model = create_model(  # type: ignore[call-overload]
        record.__name__, __config__=ConfigDict(extra="forbid", frozen=True), **fields
    )
    twins[record] = model
    return model


TWINS: dict[type, type[BaseModel]] = {}
_twin(Upstream, TWINS)
PYDANTIC_SETTINGS = _twin(Settings, TWINS)

AWKWARD: list[Any] = [
    None, "", " ", "abc", "7", " 7 ", "+7", "-1", "0", "1", "2", "3.0", "3.5", "1_000", "1e3",
    "0x10", "inf", "nan", "-inf", 0, 1, 2, 7, -1, 65536, 3.0, 3.5, 0.0, 1.0, -0.5, float("inf"),
    True, False, "true", "True", "off", "YES", "n", " true ", b"bytes", b"\xff", [], [1], ["a"],
    ("a",), {"a"}, {}, {"a": 1}, Path("p"), "text", "json", "JSON", "public", "private",
    "127.0.0.1:5000", "[::1]:5000", "nohost", ":80", "h:0", "h:x", "h:65536", "localhost:1",
    "https://r.example/p/", "http://r.example:8080", "ftp://r.example", 'http://a"b',
    "http://u:p@h", "http://h/?q=1", "http://h/#f", "s3://bucket/prefix", "docker.io",
    "Docker.io", "a/b", "10.0.0.1", "10.0.0.0/8", "fe80::/10", "nope",
    ["10.0.0.1", "10.0.0.0/8"], ["nope"], [" 10.0.0.1"],
    [{"name": "docker.io", "url": "https://registry-1.docker.io/"}],
    [{"name": "a", "url": "http://a"}, {"name": "a", "url": "http://b"}],
    [{"name": "a", "url": "http://a", "mirror": True},
     {"name": "b", "url": "http://b", "mirror": "yes"}],
    [{"name": "a", "url": "http://u:p@a"}], [{"name": "a"}],
    [{"name": "a", "url": "http://a", "x": 1}],
    [{"name": "a", "url": "http://a", "ttl_seconds": "-1", "timeout_seconds": "0"}],
    ["docker.io=https://x"], [None], "docker.io,ghcr.io",
]  # fmt: skip


def _outcome(make: Any, values: dict[str, Any]) -> tuple[str, Any]:
    try:
        made = make(**values)
    except (ValidationError, InvalidFields) as exc:
        return "refused", [(tuple(e["loc"]), e["msg"]) for e in exc.errors()]
    return "made", repr(made.model_dump(mode="json"))


@pytest.mark.parametrize("name", list(Settings.model_fields), ids="setting-{}".format)
def test_every_setting_accepts_and_refuses_as_pydantic_did(name: str) -> None:
    for value in AWKWARD:
        ours = _outcome(Settings, {name: value})
        theirs = _outcome(PYDANTIC_SETTINGS, {name: value})
        assert ours == theirs, (name, value)


@pytest.mark.parametrize("name", list(Upstream.model_fields), ids="upstream-{}".format)
def test_every_upstream_field_accepts_and_refuses_as_pydantic_did(name: str) -> None:
    base = {"name": "docker.io", "url": "https://registry-1.docker.io"}
    for value in AWKWARD:
        values = {**base, name: value}
        assert _outcome(Upstream, values) == _outcome(TWINS[Upstream], values), (name, value)


def test_several_problems_and_unknown_keys_are_all_reported_in_order() -> None:
    values = {"zz": 1, "workers": "many", "listen": "nohost", "gc_interval_seconds": 0, "aa": 2}
    ours = _outcome(Settings, values)
    assert ours == _outcome(PYDANTIC_SETTINGS, values)
    assert ours[0] == "refused" and len(ours[1]) == 5
    with pytest.raises(ConfigError) as caught:
        load_settings(None, values, environ={})
    assert caught.value.args[0].startswith("invalid configuration: listen: Value error")


def test_defaults_dumps_and_copies_are_the_models() -> None:
    ours, theirs = Settings(), PYDANTIC_SETTINGS()
    assert repr(ours.model_dump(mode="json")) == repr(theirs.model_dump(mode="json"))
    assert list(Settings.model_fields) == list(PYDANTIC_SETTINGS.model_fields)
    proxies = [{"name": "docker.io", "url": "https://r.example/", "mirror": True}]
    made = Settings(proxies=proxies, data_dir="d", workers="2")
    assert made.model_dump()["data_dir"] == Path("d")
    assert made.model_dump()["proxies"][0] == TWINS[Upstream](**proxies[0]).model_dump()
    assert Settings.model_validate(made.model_dump(mode="json")) == made
    copy = made.model_copy(update={"workers": 5})
    assert (copy.workers, made.workers, copy.proxies) == (5, 2, made.proxies)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.workers = 3  # type: ignore[misc]


def test_environment_lists_are_the_list_settings() -> None:
    hints = typing.get_type_hints(Settings)
    assert list_fields(Settings) == {
        name for name, hint in hints.items() if typing.get_origin(hint) is list
    }
    loaded = load_settings(
        None,
        environ={
            "DOCKYARD_TRUSTED_PROXIES": "10.0.0.1, 10.0.1.0/24",
            "DOCKYARD_PROXIES": '[{"name": "docker.io", "url": "https://r.example"}]',
            "DOCKYARD_WORKERS": "3",
        },
    )
    assert loaded.trusted_proxies == ["10.0.0.1", "10.0.1.0/24"]
    assert loaded.proxies == [Upstream(name="docker.io", url="https://r.example")]
    assert loaded.workers == 3
