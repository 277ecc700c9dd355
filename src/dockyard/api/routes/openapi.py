"""`/api/v1/openapi.json`: the account API's description, a static document kept next to the
code it describes (tests check that they agree), so clients and docs/api.md read the same."""

from __future__ import annotations

import functools
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

DOCUMENT = Path(__file__).parent.parent / "openapi.json"


@functools.cache
def _document() -> bytes:
    return DOCUMENT.read_bytes()


async def document(request: Request) -> Response:
    # Public, with accounts on or off: it describes the calls, and holds nothing of anyone's.
    return Response(_document(), media_type="application/json")
