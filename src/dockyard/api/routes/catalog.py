"""`/v2/_catalog`: repository names in lexical order, paged by `n` and `last`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.routes.common import registry_of
from dockyard.api.routes.tags import next_link
from dockyard.service.listing import parse_page_size


async def list_repositories(request: Request) -> Response:
    params = request.query_params
    page = await registry_of(request).listing.catalog(
        parse_page_size(params.get("n")), params.get("last")
    )
    return JSONResponse({"repositories": page.items}, headers=next_link("/v2/_catalog", page))
