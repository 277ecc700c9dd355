"""Patterns of immutability rules: what is refused, what each one catches."""

from __future__ import annotations

import pytest

from dockyard.core.tag_patterns import InvalidPattern, matches, validate_pattern

DIGEST_TAG = "sha256-" + "a" * 64


@pytest.mark.parametrize(
    ("pattern", "tag", "caught"),
    [
        ("v*", "v1.0", True),
        ("v*", "v", True),
        ("v*", "latest", False),
        ("release-*", "release-2024.01", True),
        ("release-*", "prerelease-1", False),
        ("*-stable", "1.2-stable", True),
        ("*-stable", "1.2-stable-rc", False),
        ("v*.*", "v1.2", True),
        ("v*.*", "v12", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "acb", False),
        ("ab*ba", "aba", False),  # the two literal ends must not overlap
        ("latest", "latest", True),
        ("latest", "latest2", False),
        ("v.1", "vx1", False),  # `.` is a dot, not any character
        # Signature and referrer fallback tags: only a pattern naming them holds them.
        ("*", DIGEST_TAG, False),
        ("*", DIGEST_TAG + ".sig", False),
        ("*.sig", DIGEST_TAG + ".sig", False),
        ("sha256-*", DIGEST_TAG, True),
        ("sha256-*.sig", DIGEST_TAG + ".sig", True),
        ("sha256-*.sig", DIGEST_TAG + ".att", False),
        ("*", "sha256-short", True),  # not a digest: an ordinary tag
    ],
)
def test_matches(pattern: str, tag: str, caught: bool) -> None:
    assert matches(validate_pattern(pattern), tag) is caught


@pytest.mark.parametrize(
    "pattern",
    [
        "",
        "**",
        "v**",
        "v[0-9]*",
        "(a|b)",
        "v+",
        "^v",
        "v$",
        "a\\d",
        "v?",
        "a/b",
        "-v",
        ".v",
        "v*" * 65,
        "x" * 129,
        "v\n",
    ],
)
def test_refused(pattern: str) -> None:
    with pytest.raises(InvalidPattern):
        validate_pattern(pattern)


def test_longest_pattern_is_taken() -> None:
    assert validate_pattern("v" * 128) == "v" * 128
