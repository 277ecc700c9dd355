"""`/v2/_catalog`: repository names in lexical order, paged by `n` and `last`; with accounts
on, only those the caller may pull."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.routes.common import registry_of, require
from dockyard.api.routes.tags import next_link
from dockyard.auth.gate import Need
from dockyard.service.listing import parse_page_size


async def list_repositories(request: Request) -> Response:
    caller = await require(request, Need("catalog"))
    params = request.query_params
    page = await registry_of(request).listing.catalog(
        parse_page_size(params.get("n")), params.get("last")
    )
    items = page.items
    if caller is not None:
        items = await request.app.state.auth.gate.may_pull(caller, items)
    return JSONResponse({"repositories": items}, headers=next_link("/v2/_catalog", page))
