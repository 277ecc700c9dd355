"""Template filters: times and sizes as people read them."""

from __future__ import annotations

import datetime
import time

_UNITS = (
    (86400 * 365, "year"),
    (86400 * 30, "month"),
    (86400, "day"),
    (3600, "hour"),
    (60, "minute"),
)


def ago(timestamp: float | None, now: float | None = None) -> str:
    """ "3 hours ago"; "never" without a time."""
    if timestamp is None:
        return "never"
    elapsed = max(0.0, (time.time() if now is None else now) - timestamp)
    for seconds, unit in _UNITS:
        if elapsed >= seconds:
            count = int(elapsed // seconds)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def iso_time(timestamp: float | None) -> str:
    """The machine-readable form for a `<time datetime=…>`."""
    if timestamp is None:
        return ""
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def size(count: int | None) -> str:
    """Bytes in binary units: "1.5 MiB"."""
    if count is None:
        return "—"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"
