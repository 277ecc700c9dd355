"""What every page handler shares: the wrapper that answers errors as pages, the one
"not found" answer for anything missing or not the viewer's to see, and `signed_in` for pages
of a signed-in viewer (checking a posted form's CSRF token first), which `for_signed_in` and
`for_administrators` wrap around a handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.web.forms import posted_form
from dockyard.web.rendering import redirect, render
from dockyard.web.site import SITE_KEY, Site, auth_of, registry_of
from dockyard.web.viewer import VIEWER_KEY, Viewer, viewer_of

Handler = Callable[[Request], Awaitable[Response]]
# A page of signed-in viewers: given the viewer and the posted form (empty for a GET).
SignedInHandler = Callable[[Request, Viewer, dict[str, str]], Awaitable[Response]]
# Headers of an error that a page passes on (a challenge's WWW-Authenticate is the API's).
_KEPT_HEADERS = ("Retry-After",)


def not_found() -> RegistryError:
    """The answer for a missing namespace or repository and for one the viewer may not see:
    one message, naming nothing, so the two cannot be told apart."""
    return RegistryError(ErrorCode.NOT_FOUND, "There is nothing here, or it is not yours to see.")


async def signed_in(request: Request) -> tuple[Viewer, dict[str, str], Response | None]:
    """The viewer and the posted form (empty for a GET); for a viewer not signed in, the
    answer to give instead: a GET is sent to sign in first."""
    viewer = await viewer_of(request)
    if auth_of(request) is None:
        raise RegistryError(ErrorCode.ENDPOINT_UNKNOWN, "this registry runs without accounts")
    form: dict[str, str] = {}
    if request.method == "POST":
        # The form's token first: a session that ended (signed out, password changed, account
        # gone) is a new anonymous one, whose forms do not exist yet.
        timeout = registry_of(request).settings.body_timeout_seconds
        form = await posted_form(request, viewer, timeout)
    if not viewer.signed_in:
        if request.method == "POST":
            raise RegistryError(ErrorCode.DENIED, "sign in first")
        target = "/sign-in?next=" + quote(request.url.path)
        return viewer, form, redirect(request, viewer, target)
    return viewer, form, None


def for_signed_in(handler: SignedInHandler) -> Handler:
    """`handler` for signed-in viewers only: the others get `signed_in`'s answer instead."""

    @wraps(handler)
    async def guarded(request: Request) -> Response:
        viewer, form, elsewhere = await signed_in(request)
        if elsewhere is not None:
            return elsewhere
        return await handler(request, viewer, form)

    return guarded


def for_administrators(handler: SignedInHandler) -> Handler:
    """`handler` for signed-in administrators only: other signed-in viewers are refused."""

    @wraps(handler)
    async def guarded(request: Request) -> Response:
        viewer, form, elsewhere = await signed_in(request)
        if elsewhere is not None:
            return elsewhere
        if not viewer.is_admin:
            raise RegistryError(ErrorCode.DENIED, "only an administrator may do this")
        return await handler(request, viewer, form)

    return guarded


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
