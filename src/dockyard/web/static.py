"""The stylesheet (and any small script) served from the package's own `static/` folder."""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from dockyard.web.rendering import SECURITY_HEADERS

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def _load() -> dict[str, tuple[bytes, str]]:
    """Every file of `static/`, read once: the names served are exactly these."""
    found = {}
    for entry in resources.files("dockyard.web").joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in _TYPES:
            found[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return found


_FILES = _load()


async def serve(request: Request) -> Response:
    found = _FILES.get(request.path_params["file"])
    headers = {**SECURITY_HEADERS, "Cache-Control": "public, max-age=3600"}
    if found is None:
        return Response(b"not found\n", 404, headers=headers, media_type="text/plain")
    body, media_type = found
    return Response(body, headers=headers, media_type=media_type)
