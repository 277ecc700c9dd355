"""`/v2/_catalog`: repository names in lexical order, paged by `n` and `last`; with accounts
on, only those the caller may pull."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.listing_body import listing_json
from dockyard.api.routes.common import gate_of, registry_of, require
from dockyard.api.routes.tags import next_link
from dockyard.auth.requests import Need
from dockyard.service.listing import Page, parse_page_size

# Names read per step while filling a page with repositories the caller may see.
FILL_BATCH = 100


async def list_repositories(request: Request) -> Response:
    caller = await require(request, Need("catalog"))
    params = request.query_params
    listing = registry_of(request).listing
    page = await listing.catalog(parse_page_size(params.get("n")), params.get("last"))
    if caller is not None:
        # Filter, then fill the page from further names, so the Link's `last` is always a
        # name the caller may see (never a hidden repository's).
        gate = gate_of(request)
        visible = await gate.may_pull(caller, page.items)
        more = page.next_last
        while more is not None and len(visible) < page.limit:
            batch = await listing.catalog(max(page.limit, FILL_BATCH), more)
            visible += await gate.may_pull(caller, batch.items)
            more = batch.next_last
        if len(visible) > page.limit:
            visible, more = visible[: page.limit], "more"
        page = Page(visible, visible[-1] if more is not None and visible else None, page.limit)
    body = listing_json({}, "repositories", page.items)
    return Response(body, media_type="application/json", headers=next_link("/v2/_catalog", page))
