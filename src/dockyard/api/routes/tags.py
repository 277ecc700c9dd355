"""`/v2/<name>/tags/list`: tags in lexical order, paged by `n` and `last`."""

from __future__ import annotations

from urllib.parse import quote_plus

from starlette.requests import Request

from dockyard.api.listing_body import listing_json
from dockyard.api.proxying import NAMESPACE_KEY
from dockyard.api.responses import Prebuilt
from dockyard.api.routes.common import REPLAYABLE_KEY, query_of, repository_access, repository_of
from dockyard.auth.scopes import PULL
from dockyard.service.listing import Page, parse_page_size

_JSON = (b"content-type", b"application/json")


def next_link(path: str, page: Page, ns: str | None = None) -> tuple[tuple[bytes, bytes], ...]:
    """The `Link` to the page after `page`, if one follows: its query as `urlencode` writes it
    (`n`, `last`, then `ns`)."""
    if page.next_last is None:
        return ()
    query = f"n={page.limit}&last={quote_plus(page.next_last)}"
    if ns is not None:
        query += f"&ns={quote_plus(ns)}"
    return ((b"link", f'<{path}?{query}>; rel="next"'.encode("latin-1")),)


def listing_answer(body: bytes, link: tuple[tuple[bytes, bytes], ...]) -> Prebuilt:
    """A listing's 200, with the headers (and their order) Starlette's `Response` gives it."""
    return Prebuilt(200, (*link, (b"content-length", str(len(body)).encode()), _JSON), body)


async def list_tags(request: Request) -> Prebuilt:
    name, caller = await repository_access(request, PULL)
    params = query_of(request)
    n, last = parse_page_size(params.get("n")), params.get("last")
    repository = repository_of(request, name)
    page = await repository.tags.list(n, last)
    ns = request.scope.get(NAMESPACE_KEY)
    if ns is not None:  # `?ns=`: the list and its next page under the name the client asked
        name = request.path_params["name"]
    elif caller is None and repository.replayable:
        # As for a pull (`manifests.get`): the answer follows from the store alone, and may be
        # given again while it has not changed (`api.hot_reads`).
        request.scope[REPLAYABLE_KEY] = None
    body = listing_json({"name": name}, "tags", page.items)
    return listing_answer(body, next_link(f"/v2/{name}/tags/list", page, ns))
