"""Which repository a page is about, and what its viewer may do there, decided as the
registry API decides it.

Seeing the page takes pull (`gate.actions_for`, the same call `/v2/` makes); anything
missing, hidden or malformed answers the one "not found" page, before anything of the
repository is read, so a private repository's page is byte-for-byte a missing one's. Editing
the description and README takes push (as `PATCH /api/v1/repositories/NAME`), deleting a tag
or a manifest takes delete (as `DELETE /v2/NAME/manifests/REF`), and switching visibility
takes `may_administer` (as `PUT /api/v1/repositories/NAME/visibility`): a page offers only
what those would accept, and its handlers ask again.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from dockyard.auth.policy import may_administer, namespace_of
from dockyard.auth.scopes import ALL_ACTIONS, DELETE, PULL, PUSH
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import validate_name
from dockyard.service.image_views import TagList
from dockyard.web.pages.common import not_found
from dockyard.web.site import auth_of, registry_of
from dockyard.web.viewer import Viewer, viewer_of


@dataclass(frozen=True, slots=True)
class Shown:
    """A repository the viewer may see, and what they may do to it."""

    name: str
    viewer: Viewer
    actions: frozenset[str]
    may_set_visibility: bool

    @property
    def may_edit(self) -> bool:
        return PUSH in self.actions

    @property
    def may_delete(self) -> bool:
        return DELETE in self.actions

    def require(self, allowed: bool) -> None:
        if not allowed:
            raise RegistryError(ErrorCode.DENIED, "You may not change this repository.")


async def shown_repository(request: Request) -> tuple[Shown, TagList]:
    """The repository of the path, with its first page of tags (which proves it has content);
    the "not found" page unless the viewer may pull it."""
    viewer = await viewer_of(request)
    try:
        name = validate_name(request.path_params["name"])
    except RegistryError:
        raise not_found() from None
    auth = auth_of(request)
    if auth is None or viewer.principal is None:
        actions, administers = ALL_ACTIONS, False  # no accounts: no visibility to switch
    else:
        actions = await auth.gate.actions_for(viewer.principal, name)
        administers = viewer.signed_in and may_administer(viewer.principal, namespace_of(name))
    if PULL not in actions:
        raise not_found()
    try:
        tags = await registry_of(request).image_views.tags(name, per_page=1)
    except RegistryError:
        raise not_found() from None
    return Shown(name, viewer, actions, administers), tags
