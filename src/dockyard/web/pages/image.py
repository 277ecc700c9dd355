"""An image's page (a tag or a digest): platforms, layers, the config's run settings and
history, annotations, referrers, signatures and attestations with their verification status
under the repository's signature policy; and its manifest and config as pushed, byte for byte."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.web.pages.repository import registry_host
from dockyard.web.pages.repository_access import shown_repository
from dockyard.web.rendering import SECURITY_HEADERS, render
from dockyard.web.site import registry_of


async def show(request: Request) -> Response:
    shown, _ = await shown_repository(request)
    reference = request.path_params["reference"]
    registry = registry_of(request)
    image = await registry.image_views.image(shown.name, reference)
    # By digest: the tag may have moved since the view was read.
    signatures = await registry.signature_gate.statuses(
        registry.repository(shown.name), image.digest
    )
    return render(
        request,
        shown.viewer,
        "image.html",
        repo=shown,
        image=image,
        signatures=signatures,
        host=registry_host(request),
    )


async def raw(request: Request) -> Response:
    """The manifest's bytes, or its config's (`/config`), as text: shown, never run."""
    shown, _ = await shown_repository(request)
    views = registry_of(request).image_views
    reference = request.path_params["reference"]
    part = request.path_params.get("part")
    if part is None:
        media_type, body = await views.raw_manifest(shown.name, reference)
    elif part == "config":
        media_type, body = await views.raw_config(shown.name, reference)
    else:
        raise RegistryError(ErrorCode.NOT_FOUND)
    headers = {**SECURITY_HEADERS, "X-Media-Type": media_type}
    # text/plain with nosniff: whatever a pusher put in the JSON, a browser only shows it.
    return Response(body, headers=headers, media_type="text/plain; charset=utf-8")
