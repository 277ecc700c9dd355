"""Property tests for the pure parsers: digests, names, tags, ranges."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.core.digest import Digest
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import is_valid_name, is_valid_tag, validate_name
from dockyard.core.ranges import parse_content_range, parse_range

component = st.from_regex(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*", fullmatch=True)


@given(st.lists(component, min_size=1, max_size=5))
def test_grammar_names_are_accepted(parts: list[str]) -> None:
    name = "/".join(parts)
    if len(name) <= 255:
        assert is_valid_name(name)


@given(st.text(max_size=80))
def test_valid_names_never_escape_a_folder(name: str) -> None:
    if is_valid_name(name):
        parts = name.split("/")
        assert all(p and p not in (".", "..") for p in parts)
        assert not name.startswith("/") and "\\" not in name and "\x00" not in name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "A",
        "a//b",
        "/a",
        "a/",
        "../a",
        "a/../b",
        "a/./b",
        "a..b",
        "-a",
        "a-",
        "a b",
        "a%2fb",
        "ä",
        "a" * 256,
        "a\x00",
    ],
)
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(RegistryError) as info:
        validate_name(name)
    assert info.value.code is ErrorCode.NAME_INVALID


@given(st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=140))
def test_tag_grammar(tag: str) -> None:
    expected = len(tag) <= 128 and tag[0] not in ".-"
    assert is_valid_tag(tag) == expected


@given(st.binary(max_size=64), st.sampled_from(["sha256", "sha512"]))
def test_digest_round_trip(data: bytes, algorithm: str) -> None:
    digest = Digest.of(data, algorithm)
    assert str(digest) == f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    assert Digest.parse(str(digest)) == digest


@given(st.text(max_size=140))
def test_digest_parser_never_crashes(text: str) -> None:
    parsed = Digest.try_parse(text)
    if parsed is not None:
        assert str(parsed) == text


@pytest.mark.parametrize(
    "text",
    [
        "sha256:abc",
        "sha256:" + "A" * 64,
        "md5:" + "a" * 32,
        "sha256" + "a" * 64,
        "sha512:" + "a" * 64,
        ":",
        "sha256:",
        "sha256:" + "a" * 64 + "\n",
        "sha256:" + "\u0661" * 64,
    ],
)
def test_bad_digests_are_digest_invalid(text: str) -> None:
    with pytest.raises(RegistryError) as info:
        Digest.parse(text)
    assert info.value.code is ErrorCode.DIGEST_INVALID


@given(st.integers(0, 10_000), st.integers(0, 20_000), st.integers(0, 20_000))
def test_range_forms(size: int, a: int, b: int) -> None:
    for header in (f"bytes={a}-{b}", f"bytes={a}-", f"bytes=-{b}"):
        try:
            span = parse_range(header, size)
        except RegistryError as exc:
            assert exc.status == 416
            assert exc.headers["Content-Range"] == f"bytes */{size}"
            continue
        if span is not None:
            start, end = span
            assert 0 <= start <= end < size


def test_range_examples() -> None:
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-10", 100) == (90, 99)
    assert parse_range("bytes=-1000", 100) == (0, 99)
    assert parse_range("bytes=50-1000", 100) == (50, 99)
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=0-1,5-6", 100) is None
    with pytest.raises(RegistryError):
        parse_range("bytes=100-", 100)


@given(st.text(max_size=40))
def test_content_range_parser_never_crashes(text: str) -> None:
    try:
        start, end = parse_content_range(text)
    except RegistryError as exc:
        assert exc.status == 416
    else:
        assert 0 <= start <= end


def test_content_range_forms() -> None:
    assert parse_content_range("0-99") == (0, 99)
    assert parse_content_range("bytes 100-199/*") == (100, 199)
    assert parse_content_range("bytes=5-5") == (5, 5)
