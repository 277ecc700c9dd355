"""`/v2/_catalog`: repository names in lexical order, paged by `n` and `last`; with accounts
on, only those the caller may pull."""

from __future__ import annotations

from starlette.requests import Request

from dockyard.api.listing_body import listing_json
from dockyard.api.responses import Prebuilt
from dockyard.api.routes.common import REPLAYABLE_KEY, gate_of, query_of, registry_of, require
from dockyard.api.routes.tags import listing_answer, next_link
from dockyard.auth.requests import Need
from dockyard.service.listing import Page, parse_page_size

# Names read per step while filling a page with repositories the caller may see.
FILL_BATCH = 100


async def list_repositories(request: Request) -> Prebuilt:
    caller = await require(request, Need("catalog"))
    params = query_of(request)
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
    else:
        # No accounts: every caller sees the same page, which follows from the store alone
        # and may be given again while it has not changed (`api.hot_reads`).
        request.scope[REPLAYABLE_KEY] = None
    body = listing_json({}, "repositories", page.items)
    return listing_answer(body, next_link("/v2/_catalog", page))
