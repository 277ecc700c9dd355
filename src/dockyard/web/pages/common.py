"""What every page handler shares: the wrapper that answers errors as pages, and the one
"not found" answer for anything missing or not the viewer's to see."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.web.rendering import render
from dockyard.web.site import SITE_KEY, Site
from dockyard.web.viewer import VIEWER_KEY, Viewer, viewer_of

log = logging.getLogger("dockyard.web")

Handler = Callable[[Request], Awaitable[Response]]
# Headers of an error that a page passes on (a challenge's WWW-Authenticate is the API's).
_KEPT_HEADERS = ("Retry-After",)


def not_found() -> RegistryError:
    """The answer for a missing namespace or repository and for one the viewer may not see:
    one message, naming nothing, so the two cannot be told apart."""
    return RegistryError(ErrorCode.NOT_FOUND, "There is nothing here, or it is not yours to see.")


def page(site: Site, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A route endpoint for `handler`: errors become an error page with the status of their
    row in `core/errors.py`."""

    async def endpoint(request: Request) -> Response:
        request.scope[SITE_KEY] = site
        try:
            return await handler(request)
        except RegistryError as error:
            viewer: Viewer | None = request.scope.get(VIEWER_KEY)
            if viewer is None:
                try:
                    viewer = await viewer_of(request)
                except RegistryError:
                    viewer = None
            response = render(request, viewer, "error.html", error.status, error=error)
            for name in _KEPT_HEADERS:
                if name in error.headers:
                    response.headers[name] = error.headers[name]
            return response

    endpoint.__name__ = getattr(handler, "__name__", "page")
    endpoint.__doc__ = handler.__doc__
    return endpoint
