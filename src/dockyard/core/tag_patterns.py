"""Tag patterns of immutability rules: what a pattern may be, and which tags it catches.

A pattern is the characters of a tag plus `*`, which stands for any run of them (empty too).
Nothing else is special: a pattern is never handed to a regular expression engine as written,
so `[`, `(`, `+`, `\\` or `^` are refused rather than interpreted. `**` is refused too: it
means what `*` does, and saying it twice usually means the author expected a path glob.

Tags that clients without the referrers API maintain for signatures and attestations
(`sha256-<hex>`, `sha256-<hex>.sig`, `.att`, `.sbom`) move with every new signature. A broad
rule such as `*` must not freeze them (Harbor's did, and cosign could no longer sign:
harbor#17332), so only a pattern that itself starts with the algorithm (`sha256-*`,
`sha256-*.sig`) catches them.
"""

from __future__ import annotations

import re

MAX_PATTERN_LENGTH = 128
_PATTERN = re.compile(r"[A-Za-z0-9_.*-]+")
_FALLBACK_TAG = re.compile(r"(sha256-[0-9a-f]{64}|sha512-[0-9a-f]{128})(\.(sig|att|sbom))?")


class InvalidPattern(ValueError):
    """The pattern is not one a rule may hold; the message says why."""


def validate_pattern(pattern: str) -> str:
    if not pattern or len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidPattern(f"a tag pattern has 1 to {MAX_PATTERN_LENGTH} characters")
    if not _PATTERN.fullmatch(pattern):
        raise InvalidPattern(
            "a tag pattern holds letters, digits, '_', '.', '-' and '*' (any characters) only"
        )
    if "**" in pattern:
        raise InvalidPattern("'**' in a tag pattern: write '*'")
    if pattern[0] in ".-":
        raise InvalidPattern("a tag pattern starts as a tag does, with a letter, digit, _ or *")
    return pattern


def is_fallback_tag(tag: str) -> bool:
    """A tag kept for a subject's signatures or referrers, named after its digest."""
    return _FALLBACK_TAG.fullmatch(tag) is not None


def matches(pattern: str, tag: str) -> bool:
    """Whether the rule `pattern` (already validated) catches `tag`."""
    if is_fallback_tag(tag) and not pattern.startswith(tag.split("-", 1)[0] + "-"):
        return False
    parts = pattern.split("*")
    if len(parts) == 1:
        return tag == pattern
    if not (tag.startswith(parts[0]) and tag.endswith(parts[-1])):
        return False
    if len(tag) < len(parts[0]) + len(parts[-1]):
        return False
    # The middle parts in order, each as early as it fits: greedy leftmost is exact for `*`.
    position, end = len(parts[0]), len(tag) - len(parts[-1])
    for part in parts[1:-1]:
        found = tag.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True
