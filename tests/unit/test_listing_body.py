"""Listing bodies are byte for byte what `json.dumps` makes of them, whatever the names hold."""

from __future__ import annotations

import json
import random

import pytest

from dockyard.api.listing_body import listing_json

AWKWARD = ['a"b', "back\\slash", "new\nline", "\x00", "\x1f", "\x7f", "é", "日本", "😀", "</x>"]


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
