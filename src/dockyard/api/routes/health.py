"""`/healthz` (the process answers) and `/readyz` (storage takes a write, metadata answers):
for load balancers and orchestrators, without authentication. Neither names a secret: the
reason a server is not ready is one of a few fixed sentences (`service/readiness.py`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from dockyard.api.routes.common import registry_of
from dockyard.core.errors import ErrorCode, RegistryError

NO_STORE = {"cache-control": "no-store"}


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n", headers=NO_STORE)


async def readyz(request: Request) -> Response:
    problem = await registry_of(request).readiness.problem()
    if problem is not None:
        raise RegistryError(ErrorCode.UNAVAILABLE, f"not ready: {problem}", headers=NO_STORE)
    return PlainTextResponse("ready\n", headers=NO_STORE)
