"""HTTP byte ranges: `Range` on blob GETs and `Content-Range` on chunked uploads."""

from __future__ import annotations

import re

from dockyard.core.errors import ErrorCode, RegistryError

# ASCII digits only: `\d` and int() also take other scripts' digits.
_RANGE_SPEC = re.compile(r"^\s*([0-9]*)\s*-\s*([0-9]*)\s*$", re.ASCII)
_CONTENT_RANGE = re.compile(
    r"^(?:bytes[ =])?\s*([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]{1,19}|\*))?$", re.ASCII
)
# Beyond any blob size; longer numbers are read as this (int() refuses 4,300 digits or more).
_HUGE = 10**19


def _number(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) < 19 else _HUGE


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """Resolve a `Range: bytes=...` header to one inclusive (start, end) pair.

    Returns None when the header should be ignored (not bytes, several ranges) so the whole blob
    is served, as RFC 9110 allows; raises a 416 when no byte of it can be served.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec or "," in spec:
        return None
    match = _RANGE_SPEC.match(spec)
    if match is None or (not match.group(1) and not match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # suffix form: the last N bytes
        length = _number(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = _number(first)
    if last and _number(last) < start:
        return None  # syntactically invalid: ignored, as RFC 9110 says
    if start >= size:
        raise _unsatisfiable(size)
    end = _number(last) if last else size - 1
    return start, min(end, size - 1)


def _unsatisfiable(size: int) -> RegistryError:
    return RegistryError(
        ErrorCode.RANGE_NOT_SATISFIABLE,
        headers={"Content-Range": f"bytes */{size}"},
    )


def parse_content_range(header: str) -> tuple[int, int]:
    """Parse an upload chunk's `Content-Range: <start>-<end>` (inclusive)."""
    match = _CONTENT_RANGE.match(header.strip())
    if match is None:
        raise RegistryError(ErrorCode.BLOB_UPLOAD_RANGE_INVALID, "malformed Content-Range")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise RegistryError(
            ErrorCode.BLOB_UPLOAD_RANGE_INVALID, "Content-Range ends before it starts"
        )
    return start, end
