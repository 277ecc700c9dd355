"""Repository names and tags, validated by the Distribution Spec's grammar.

A valid name can never escape a directory: components are lower-case alphanumerics joined by
`.`, `_`, `__` or runs of `-`, so `..`, empty components and absolute paths are impossible.
"""

from __future__ import annotations

import functools
import re

from dockyard.core.errors import ErrorCode, RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
# Matched whole (fullmatch): `$` also matches before a final newline, which let `v1\n` be a
# tag and ended in a response header.
NAME_PATTERN = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG_PATTERN = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")

# Distribution's limit; the spec asks clients to stay under 255 characters with the host.
MAX_NAME_LENGTH = 255


@functools.lru_cache(maxsize=4096)  # every request checks its name, often more than once
def is_valid_name(name: str) -> bool:
    return 0 < len(name) <= MAX_NAME_LENGTH and NAME_PATTERN.fullmatch(name) is not None


def validate_name(name: str) -> str:
    if not is_valid_name(name):
        raise RegistryError(ErrorCode.NAME_INVALID, detail={"name": name[:300]})
    return name


def is_valid_tag(tag: str) -> bool:
    return TAG_PATTERN.fullmatch(tag) is not None


def validate_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise RegistryError(ErrorCode.MANIFEST_INVALID, "invalid tag", detail={"tag": tag[:200]})
    return tag
