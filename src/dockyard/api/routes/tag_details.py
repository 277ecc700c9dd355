"""Dockyard extensions about tags, not part of the distribution spec (its open proposals ask
for as much): `/v2/<name>/_dockyard/tags`, every tag with its digest, media type, size and when
it was last pushed, in the order and pages of `/tags/list`, so a client needs no request per
tag; and `/v2/<name>/_dockyard/tag-history/<tag>`, where a tag pointed and when."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.routes.common import registry_of, repository_access
from dockyard.auth.scopes import PULL
from dockyard.service.listing import MAX_PAGE, parse_page_size


async def list_tag_details(request: Request) -> Response:
    name, _ = await repository_access(request, PULL)
    params = request.query_params
    n, last = parse_page_size(params.get("n")), params.get("last")
    # What this registry holds under the name (for a cached repository: what it has cached).
    tags, next_last = await registry_of(request).listing.tag_details(name, n, last)
    headers = {}
    if next_last is not None:
        query = urlencode({"n": min(n or MAX_PAGE, MAX_PAGE), "last": next_last})
        headers["Link"] = f'</v2/{name}/_dockyard/tags?{query}>; rel="next"'
    body = json.dumps({"name": name, "tags": tags}, ensure_ascii=False)
    return Response(body, media_type="application/json", headers=headers)


async def tag_history(request: Request) -> Response:
    name, _ = await repository_access(request, PULL)
    tag = request.path_params["tag"]
    history = await registry_of(request).listing.tag_history(name, tag)
    body = json.dumps({"name": name, "tag": tag, "history": history}, ensure_ascii=False)
    return Response(body, media_type="application/json")
