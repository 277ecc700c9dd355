"""`/v2/<name>/referrers/<digest>`: manifests whose subject is the digest, as an OCI index."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.routes.common import cache_route, registry_of, repository_access
from dockyard.auth.scopes import PULL
from dockyard.core import mediatypes as mt


async def list_referrers(request: Request) -> Response:
    name, _ = await repository_access(request, PULL)
    artifact_type = request.query_params.get("artifactType")
    # A cached repository lists what was cached from its upstream, never a local namesake's.
    route = await cache_route(request, name)
    result = await registry_of(request).manifests.referrers(
        route.local if route is not None else name, request.path_params["digest"], artifact_type
    )
    headers = {"OCI-Filters-Applied": "artifactType"} if result.filtered else {}
    return Response(result.index, media_type=mt.OCI_INDEX, headers=headers)
