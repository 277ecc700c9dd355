"""The route table: the push and pull routes come first, which must not change any answer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dockyard.api.routes import table

HOT = 5  # manifests, the three upload routes, blobs
SEGMENTS = [
    "v2",
    "a",
    "b",
    "manifests",
    "blobs",
    "uploads",
    "tags",
    "list",
    "referrers",
    "_catalog",
    "api",
    "v1",
    "token",
    "latest",
    "sha256:" + "a" * 64,
    "",
]


@given(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=7))
def test_no_path_is_claimed_by_a_push_route_and_a_later_one(segments: list[str]) -> None:
    path = "/" + "/".join(segments)
    routes = table(False)
    matching = [i for i, route in enumerate(routes) if route.path_regex.match(path)]
    assert not (any(i < HOT for i in matching) and any(i >= HOT for i in matching)), (
        path,
        [routes[i].path for i in matching],
    )


def test_the_push_routes_come_first() -> None:
    paths = [route.path for route in table(False)[:HOT]]
    assert all(path.startswith("/v2/{name:path}/") for path in paths)
    assert any(path.endswith("/manifests/{reference}") for path in paths)
    assert any(path.endswith("/blobs/{digest}") for path in paths)
