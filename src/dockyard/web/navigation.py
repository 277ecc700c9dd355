"""Where a page may send the browser next: only to a path of this site."""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MAX_NEXT = 2000
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def local_path(candidate: str | None, default: str = "/") -> str:
    """`candidate` when it is a path of this site, else `default`. Refused: anything with a
    scheme or a host (`https:…`, `//evil.example`), backslashes (which browsers read as
    slashes), control characters, and the same in percent-encoded form, decoded as often as
    a chain of redirects could decode it."""
    if not candidate or len(candidate) > MAX_NEXT:
        return default
    probe = candidate
    for _ in range(4):
        if (
            not probe.startswith("/")
            or probe.startswith("//")
            or "\\" in probe
            or _CONTROL.search(probe)
        ):
            return default
        parts = urlsplit(probe)
        if parts.scheme or parts.netloc:
            return default
        decoded = unquote(probe)
        if decoded == probe:
            return candidate
        probe = decoded
    return default  # still encoded after several rounds: nothing a person typed
