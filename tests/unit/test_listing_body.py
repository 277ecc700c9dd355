"""Listing bodies are byte for byte what `json.dumps` makes of them, whatever the names hold."""

from __future__ import annotations

import json
import random

import pytest

from dockyard.api.listing_body import listing_json

AWKWARD = ['a"b', "back\\slash", "new\nline", "\x00", "\x1f", "\x7f", "é", "日本", "😀", "</x>"]
# Characters whose code point ends in the byte of a quote or a backslash, or of a control
# character: none of their UTF-8 bytes is one, so none needs escaping.
NEAR = ["\u0122", "\u225c", "\u5c22", "\u0100", "\u011f", "\U0001f45c"]


def reference(fields: dict[str, str], key: str, names: list[str]) -> bytes:
    return json.dumps({**fields, key: names}, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    ("fields", "key", "names"),
    [
        ({"name": "acme/app"}, "tags", []),
        ({"name": "acme/app"}, "tags", ["latest"]),
        ({"name": "acme/app"}, "tags", ["1.0", "latest", "v2_rc-1"]),
        ({}, "repositories", []),
        ({}, "repositories", ["a", "b/c", "d.e-f_g"]),
        ({"name": 'odd"name'}, "tags", ["plain"]),
        ({"name": "plain"}, "tags", ["ok", *AWKWARD]),
        ({}, "repositories", AWKWARD),
        ({}, "repositories", [""]),
        ({"name": "\u225c"}, "tags", NEAR),
        ({}, "repositories", [*NEAR, *AWKWARD]),
    ],
)
def test_a_listing_body_is_what_the_json_encoder_makes(fields, key, names) -> None:
    assert listing_json(fields, key, names) == reference(fields, key, names)
    assert json.loads(listing_json(fields, key, tuple(names))) == {**fields, key: names}


def test_random_names_encode_as_the_json_encoder_does() -> None:
    rng = random.Random(21)
    alphabet = "abz09._-/" + "".join(AWKWARD)
    for _ in range(500):
        names = ["".join(rng.choices(alphabet, k=rng.randint(0, 6))) for _ in range(5)]
        name = "".join(rng.choices(alphabet, k=4))
        assert listing_json({"name": name}, "tags", names) == reference(
            {"name": name}, "tags", names
        )


class Encoder:
    """Stands in for the json module: counts the listings that needed the encoder."""

    def __init__(self) -> None:
        self.calls = 0

    def dumps(self, *args: object, **kwargs: object) -> str:
        self.calls += 1
        return json.dumps(*args, **kwargs)  # type: ignore[arg-type]


def test_names_that_need_no_escaping_skip_the_encoder(monkeypatch) -> None:
    from dockyard.api import listing_body

    encoder = Encoder()
    monkeypatch.setattr(listing_body, "json", encoder)
    tags = [f"tag-{i:05d}" for i in range(5_000)]
    repositories = ["acme/app", "b/c.d-e_f", "é/日本"]
    assert listing_json({"name": "bench/app"}, "tags", tags) == reference(
        {"name": "bench/app"}, "tags", tags
    )
    assert listing_json({}, "repositories", repositories) == reference(
        {}, "repositories", repositories
    )
    assert listing_json({}, "repositories", []) == b'{"repositories":[]}'
    assert listing_json({"name": "\u225c"}, "tags", NEAR) == reference(
        {"name": "\u225c"}, "tags", NEAR
    )
    assert encoder.calls == 0
    for odd in (['a"b'], ["a\\b"], ["a\nb"], ["ok", 'x"']):
        listing_json({}, "repositories", odd)
    listing_json({"name": 'a"'}, "tags", ["ok"])
    assert encoder.calls == 5
