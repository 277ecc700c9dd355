"""`/v2/<name>/tags/list`: tags in lexical order, paged by `n` and `last`."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.listing_body import listing_json
from dockyard.api.proxying import NAMESPACE_KEY
from dockyard.api.routes.common import repository_access, repository_of
from dockyard.auth.scopes import PULL
from dockyard.service.listing import Page, parse_page_size


def next_link(path: str, page: Page, ns: str | None = None) -> dict[str, str]:
    if page.next_last is None:
        return {}
    params: dict[str, str | int] = {"n": page.limit, "last": page.next_last}
    if ns is not None:
        params["ns"] = ns
    query = urlencode(params)
    return {"Link": f'<{path}?{query}>; rel="next"'}


async def list_tags(request: Request) -> Response:
    name, _ = await repository_access(request, PULL)
    params = request.query_params
    n, last = parse_page_size(params.get("n")), params.get("last")
    page = await repository_of(request, name).tags.list(n, last)
    ns = request.scope.get(NAMESPACE_KEY)
    if ns is not None:  # `?ns=`: the list and its next page under the name the client asked
        name = request.path_params["name"]
    body = listing_json({"name": name}, "tags", page.items)
    link = next_link(f"/v2/{name}/tags/list", page, ns)
    return Response(body, media_type="application/json", headers=link)
