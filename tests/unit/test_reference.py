"""Reference normalisation, checked against docker's own cases."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.core.reference import InvalidReference, parse_reference

H = "sha256:" + "a" * 64

# (input, registry, repository, tag, digest): the normalisation docker applies.
CASES = [
    ("alpine", "docker.io", "library/alpine", "latest", None),
    ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
    ("library/alpine", "docker.io", "library/alpine", "latest", None),
    ("docker.io/alpine", "docker.io", "library/alpine", "latest", None),
    ("index.docker.io/alpine", "docker.io", "library/alpine", "latest", None),
    ("docker.io/library/alpine:edge", "docker.io", "library/alpine", "edge", None),
    ("myname/app:1.0", "docker.io", "myname/app", "1.0", None),
    ("myname/sub/app", "docker.io", "myname/sub/app", "latest", None),
    ("ghcr.io/owner/app:1.0", "ghcr.io", "owner/app", "1.0", None),
    (f"ghcr.io/owner/app@{H}", "ghcr.io", "owner/app", None, H),
    (f"alpine:3@{H}", "docker.io", "library/alpine", "3", H),
    ("localhost:5000/app", "localhost:5000", "app", "latest", None),
    ("localhost/app", "localhost", "app", "latest", None),
    ("127.0.0.1:5000/a/b:t", "127.0.0.1:5000", "a/b", "t", None),
    ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
    ("registry.example.com:443/x", "registry.example.com:443", "x", "latest", None),
    ("Example/app", "Example", "app", "latest", None),  # upper case: a host, as docker says
    ("a.b/c_d__e-f--g.h:T_a.g-1", "a.b", "c_d__e-f--g.h", "T_a.g-1", None),
]

INVALID = [
    "",
    " alpine",
    "alpine ",
    "Alpine",
    "docker.io/Alpine",
    "alpine:",
    "alpine:-x",
    "alpine:" + "t" * 129,
    "alpine@sha256:xyz",
    "alpine@",
    "a//b",
    "/alpine",
    "alpine/",
    "a" * 64,
    "ghcr.io/",
    "host:port:bad/x",
    "a..b",
    "-a",
    "a-",
    "localhost:5000/A",
    "x" * 250 + "/" + "y" * 10,
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), CASES)
def test_docker_normalisation(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (
        registry,
        repository,
        tag,
        digest,
    )


@pytest.mark.parametrize("text", INVALID)
def test_invalid_references_say_why(text: str) -> None:
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert str(info.value)


def test_forms_and_hosts() -> None:
    ref = parse_reference("alpine")
    assert str(ref) == "docker.io/library/alpine:latest"
    assert ref.familiar == "alpine:latest"
    assert ref.api_host == "registry-1.docker.io"
    assert parse_reference("ghcr.io/o/a").api_host == "ghcr.io"
    assert parse_reference(f"a@{H}").reference == H
    assert parse_reference("a", default_tag=None).tag is None


component = st.from_regex(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)?", fullmatch=True)


@given(
    st.lists(component, min_size=1, max_size=3),
    st.one_of(
        st.none(), st.from_regex(r"[a-z0-9]+(?:\.[a-z0-9]+)+(?::[0-9]{1,5})?", fullmatch=True)
    ),
    st.one_of(st.none(), st.from_regex(r"[\w][\w.-]{0,20}", fullmatch=True)),
)
def test_round_trip(parts: list[str], host: str | None, tag: str | None) -> None:
    text = "/".join(parts)
    if host:
        text = f"{host}/{text}"
    if tag:
        text = f"{text}:{tag}"
    if len(text) > 200:
        return
    ref = parse_reference(text)
    assert parse_reference(str(ref)) == ref
    assert ref.tag == (tag or "latest")


@given(st.text(max_size=60))
def test_never_crashes(text: str) -> None:
    with contextlib.suppress(InvalidReference):
        parse_reference(text)
