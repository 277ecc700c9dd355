"""The web pages' paths, appended to the API's route table by `api.app` when the UI is on.

Paths are chosen not to meet the registry's: `/v2/…`, `/token` and `/api/v1/…` stay the
API's, namespaces live under `/u/`, repositories under `/r/`.

The pages' code, the templates and jinja2 load when a process serves its first page, not
when it starts: a registry used through its API alone never loads them, and a server's
start to ready does not wait for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import import_module
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:
    from dockyard.web.site import Site

Endpoint = Callable[[Request], Awaitable[Response]]


class _Pages:
    """The endpoints of one route table, each made from its page module on its first
    request; the site (the template environment) is made with the first of them."""

    def __init__(self) -> None:
        self._site: Site | None = None
        self._made: dict[tuple[str, str], Endpoint] = {}
        self.targets: list[tuple[str, str, bool]] = []  # what each endpoint will load

    def page(self, module: str, name: str) -> Endpoint:
        """`dockyard.web.pages.<module>.<name>` behind `pages.common.page`."""
        return self._later(f"dockyard.web.pages.{module}", name, wrapped=True)

    def plain(self, module: str, name: str) -> Endpoint:
        """`<module>.<name>` as it is (the static files)."""
        return self._later(module, name, wrapped=False)

    def _later(self, module: str, name: str, *, wrapped: bool) -> Endpoint:
        self.targets.append((module, name, wrapped))

        async def endpoint(request: Request) -> Response:
            made = self._made.get((module, name)) or self._make(module, name, wrapped)
            return await made(request)

        endpoint.__name__ = name
        return endpoint

    def _make(self, module: str, name: str, wrapped: bool) -> Endpoint:
        # No await from the look-up to here: concurrent first requests make it once.
        made: Endpoint = getattr(import_module(module), name)
        if wrapped:
            from dockyard.web.pages.common import page

            made = page(self._the_site(), made)
        self._made[(module, name)] = made
        return made

    def _the_site(self) -> Site:
        if self._site is None:
            from dockyard.web.rendering import environment
            from dockyard.web.site import Site

            self._site = Site(environment())
        return self._site


def routes(pages: _Pages | None = None) -> list[Route]:
    pages = pages or _Pages()
    page, plain = pages.page, pages.plain
    return [
        Route("/", page("browse", "home"), methods=["GET"]),
        Route("/u/{namespace}", page("browse", "namespace"), methods=["GET"]),
        Route("/u/{namespace}/-/members", page("namespace_settings", "members"), methods=["GET"]),
        Route(
            "/u/{namespace}/-/members",
            page("namespace_settings", "set_member"),
            methods=["POST"],
        ),
        Route(
            "/u/{namespace}/-/members/remove",
            page("namespace_settings", "remove_member"),
            methods=["GET", "POST"],
        ),
        Route(
            "/u/{namespace}/-/default-visibility",
            page("namespace_settings", "default_visibility"),
            methods=["GET", "POST"],
        ),
        Route("/sign-in", page("session", "sign_in"), methods=["GET", "POST"]),
        Route("/sign-out", page("session", "sign_out"), methods=["POST"]),
        Route("/account/tokens", page("account", "tokens"), methods=["GET"]),
        Route("/account/tokens", page("account", "create_token"), methods=["POST"]),
        Route("/account/tokens/revoke", page("account", "revoke_token"), methods=["POST"]),
        Route("/account/password", page("account", "password"), methods=["GET", "POST"]),
        Route("/admin/users", page("admin", "users"), methods=["GET"]),
        Route("/admin/users", page("admin", "add_user"), methods=["POST"]),
        Route("/admin/users/disable", page("admin", "disable_user"), methods=["GET", "POST"]),
        Route("/admin/users/enable", page("admin", "enable_user"), methods=["GET", "POST"]),
        Route("/admin/users/password", page("admin", "set_password"), methods=["POST"]),
        Route("/admin/usage", page("admin", "usage"), methods=["GET"]),
        Route("/static/{file}", plain("dockyard.web.static", "serve"), methods=["GET"]),
        # A repository's own pages: `/-/` is no path component of any repository name.
        Route("/r/{name:path}/-/image/{reference}", page("image", "show"), methods=["GET"]),
        Route("/r/{name:path}/-/raw/{reference}", page("image", "raw"), methods=["GET"]),
        Route("/r/{name:path}/-/raw/{reference}/{part}", page("image", "raw"), methods=["GET"]),
        Route("/r/{name:path}/-/edit", page("repository", "edit"), methods=["GET", "POST"]),
        Route(
            "/r/{name:path}/-/visibility",
            page("repository", "visibility"),
            methods=["GET", "POST"],
        ),
        Route("/r/{name:path}/-/delete", page("repository", "delete"), methods=["GET", "POST"]),
        Route("/r/{name:path}", page("repository", "show"), methods=["GET"]),
    ]
