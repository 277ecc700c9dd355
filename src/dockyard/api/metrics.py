"""The `/metrics` page (each request is counted by `api.middleware`)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.routes.accounts import administrator
from dockyard.api.routes.common import registry_of
from dockyard.service.metrics import CONTENT_TYPE, exposition, process_metrics


async def metrics_page(request: Request) -> Response:
    """The whole server's series: for administrators (anonymous 401 with the challenge, other
    accounts 403); without accounts, to anyone, as everything else is."""
    settings = registry_of(request).settings
    if settings.auth_enabled:
        await administrator(request, changing=False)
    process_metrics().flush()  # this worker's latest; then every worker's files, off the loop
    body = await asyncio.to_thread(exposition, settings.port)
    return Response(body, media_type=CONTENT_TYPE, headers={"cache-control": "no-store"})
