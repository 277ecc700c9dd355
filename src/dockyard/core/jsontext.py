"""JSON sent by clients, parsed only once its nesting is known to be shallow.

Python's parser recurses once per level and fails with RecursionError near 1,000 levels (a
plain 500 where a client deserves a 4xx). Counting the brackets outside strings first is
linear and cannot recurse, so a deep document is refused before the parser sees it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Manifests nest about five levels deep; no document a registry accepts needs more than this.
MAX_DEPTH = 64

# A string, or what is left of an unterminated one: every `"` starts a match, so the scan
# stays linear whatever the quotes and backslashes.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_OPENING = frozenset(b"[{")


class TooDeep(ValueError):
    """The document nests deeper than the limit (a ValueError, as any other bad JSON)."""


def check_depth(data: bytes, limit: int = MAX_DEPTH) -> None:
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", data))
    if len(brackets) <= limit:
        return
    depth = 0
    for byte in brackets:
        if byte in _OPENING:
            depth += 1
            if depth > limit:
                raise TooDeep(f"JSON nested deeper than {limit} levels")
        else:
            depth -= 1


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e400: a float JSON cannot carry back
        raise ValueError(f"number out of range: {text[:20]}")
    return number


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's parser takes NaN and Infinity


def loads(body: bytes | str, limit: int = MAX_DEPTH) -> Any:
    """`json.loads` of standard JSON only, refusing documents nested deeper than `limit`
    (TooDeep) and numbers without a finite value (ValueError)."""
    data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    check_depth(data, limit)
    return json.loads(data, parse_float=_finite, parse_constant=_not_json)
