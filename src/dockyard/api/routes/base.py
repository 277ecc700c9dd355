"""`GET /v2/`: the version check every client makes first (and, with accounts on, the 401 that
starts its login flow)."""

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.routes.common import require
from dockyard.auth.requests import Need


async def version_check(request: Request) -> Response:
    await require(request, Need("base"))
    return JSONResponse({})
