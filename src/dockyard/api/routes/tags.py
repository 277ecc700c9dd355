"""`/v2/<name>/tags/list`: tags in lexical order, paged by `n` and `last`."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.routes.common import cache_route, registry_of, repository_access
from dockyard.auth.scopes import PULL
from dockyard.service.listing import Page, parse_page_size


def next_link(path: str, page: Page) -> dict[str, str]:
    if page.next_last is None:
        return {}
    query = urlencode({"n": page.limit, "last": page.next_last})
    return {"Link": f'<{path}?{query}>; rel="next"'}


async def list_tags(request: Request) -> Response:
    name, _ = await repository_access(request, PULL)
    params = request.query_params
    n, last = parse_page_size(params.get("n")), params.get("last")
    route = await cache_route(request, name)
    if route is not None:
        page = await registry_of(request).proxy.tags(route, n, last)
    else:
        page = await registry_of(request).listing.tags(name, n, last)
    return JSONResponse(
        {"name": name, "tags": page.items}, headers=next_link(f"/v2/{name}/tags/list", page)
    )
