"""The home page (every namespace and repository the viewer may see, searchable) and a
namespace's page (a user's or an organisation's repositories)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from dockyard.auth.policy import namespace_of
from dockyard.service.accounts import ACCOUNT_NAME
from dockyard.web.pages.common import not_found
from dockyard.web.pages.namespace_settings import owner_tools
from dockyard.web.rendering import render
from dockyard.web.site import auth_of, registry_of
from dockyard.web.viewer import Viewer, viewer_of, visible

MAX_QUERY = 200


@dataclass(frozen=True, slots=True)
class Listed:
    name: str
    namespace: str
    pushed_at: float | None  # None: blobs only, no manifest yet
    visibility: str | None = None  # None without accounts: everyone may pull everything


async def _visible_repositories(request: Request, viewer: Viewer) -> list[Listed]:
    """Every repository the viewer may pull, the last pushed first."""
    listing = registry_of(request).listing
    names: list[str] = []
    last = None
    while True:
        page = await listing.catalog(None, last)
        names += page.items
        if page.next_last is None:
            break
        last = page.next_last
    pushes = await listing.last_pushes()
    names = await visible(request, viewer, names)
    visibilities: dict[str, str] = {}
    if auth_of(request) is not None:
        visibilities = await registry_of(request).accounts.visibilities(names)
    shown = [
        Listed(name, namespace_of(name), pushes.get(name), visibilities.get(name)) for name in names
    ]
    shown.sort(key=lambda r: (-(r.pushed_at or 0.0), r.name))
    return shown


async def home(request: Request) -> Response:
    viewer = await viewer_of(request)
    query = request.query_params.get("q", "").strip()[:MAX_QUERY]
    repositories = await _visible_repositories(request, viewer)
    if query:
        repositories = [r for r in repositories if query.lower() in r.name.lower()]
    namespaces = sorted({r.namespace for r in repositories})
    if not query and viewer.principal is not None and viewer.signed_in:
        # The viewer's own namespaces, even before anything was pushed to them.
        namespaces = sorted(set(namespaces) | set(viewer.principal.roles))
    return render(
        request,
        viewer,
        "home.html",
        query=query,
        repositories=repositories,
        namespaces=namespaces,
    )


async def namespace(request: Request) -> Response:
    viewer = await viewer_of(request)
    name = request.path_params["namespace"]
    if not ACCOUNT_NAME.fullmatch(name) or len(name) > 255:
        raise not_found()
    repositories = [r for r in await _visible_repositories(request, viewer) if r.namespace == name]
    member = viewer.principal is not None and (viewer.is_admin or name in viewer.principal.roles)
    if not repositories and not member:
        raise not_found()
    kind = await registry_of(request).accounts.kind_of(name)
    return render(
        request,
        viewer,
        "namespace.html",
        namespace=name,
        kind=kind,
        repositories=repositories,
        tools=await owner_tools(request, viewer, name, kind),
    )
