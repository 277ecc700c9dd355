"""`/api/v1/gc`: the garbage collector's report (GET, a dry run) and a collection now (POST).

For administrators only. `?now=true` uses a grace delay of 0, as `dockyard gc --now` does.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.routes.accounts import administrator
from dockyard.api.routes.common import registry_of
from dockyard.core.errors import ErrorCode, RegistryError


async def report(request: Request) -> Response:
    changing = request.method == "POST"
    await administrator(request, changing=changing)
    registry = registry_of(request)
    if changing and registry.settings.read_only:
        raise RegistryError(ErrorCode.UNSUPPORTED, "this registry is read-only")
    now = request.query_params.get("now", "false").lower()
    if now not in ("true", "false", "1", "0"):
        raise RegistryError(ErrorCode.PARAMETER_UNSUPPORTED, "now is true or false")
    result = await registry.gc.collect(
        dry_run=not changing,
        grace_seconds=0 if now in ("true", "1") else None,
        strays=True,
    )
    return JSONResponse(result.as_json())
