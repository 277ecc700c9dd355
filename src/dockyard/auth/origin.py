"""Requests a browser sends on behalf of another site: told apart by their `Origin` header."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _endpoint(scheme: str, netloc: str) -> tuple[str, int | None]:
    """(host, port) of `netloc`, a missing port meaning the scheme's default."""
    parts = urlsplit("//" + netloc)
    return parts.hostname or "", parts.port or _DEFAULT_PORTS.get(scheme)


def same_origin(request: Request) -> bool:
    """True without an `Origin` header (no browser, or a same-origin GET), or when it names
    the host the request was sent to. The scheme is not compared (a proxy in front may end
    TLS), only the host and the port, a missing port meaning the scheme's default."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host")
    try:
        parts = urlsplit(origin.strip())
        if not parts.scheme or not parts.netloc or not host or "@" in parts.netloc:
            return False  # "null" (sandboxed pages, file:), or nothing to compare with
        scheme = parts.scheme.lower()
        # A port-less Host header means the default port of the scheme the client used,
        # which behind a TLS-ending proxy is the Origin's scheme rather than ours.
        return _endpoint(scheme, parts.netloc) in (
            _endpoint(scheme, host),
            _endpoint(request.scope.get("scheme", "http"), host),
        )
    except ValueError:  # not a URL, or a port that is no number
        return False
