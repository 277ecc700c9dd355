"""`/v2/<name>/referrers/<digest>`: manifests whose subject is the digest, as an OCI index."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.routes.common import repository_access, repository_of
from dockyard.auth.scopes import PULL
from dockyard.core import mediatypes as mt


async def list_referrers(request: Request) -> Response:
    name, _ = await repository_access(request, PULL)
    artifact_type = request.query_params.get("artifactType")
    result = await repository_of(request, name).manifests.referrers(
        request.path_params["digest"], artifact_type
    )
    headers = {"OCI-Filters-Applied": "artifactType"} if result.filtered else {}
    return Response(result.index, media_type=mt.OCI_INDEX, headers=headers)
