"""`/api/v1/repositories/NAME` (GET, PATCH): what a repository's page says about it.

Reading takes what a pull takes, and writing the description or README what a push takes,
asked of the access gate exactly as `/v2/` asks it (`routes.common.repository_access`): a
repository the caller may not pull answers as a missing one does, and a read-only token
reads but never writes. A write from another site's page is refused before any credential
is looked at.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.origin import same_origin
from dockyard.api.routes.accounts import _json
from dockyard.api.routes.common import registry_of, repository_access
from dockyard.auth.scopes import PULL, PUSH
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.service.repository_info import MAX_README_BYTES, DescribedRepository

# A README of the largest size, every character escaped as JSON may escape it (`\\u0000`).
MAX_BODY_BYTES = 6 * MAX_README_BYTES + 64 * 1024
FIELDS = frozenset({"description", "readme"})


async def _answer(request: Request, described: DescribedRepository) -> Response:
    registry = registry_of(request)
    name = described.name
    tags = await registry.image_views.tags(name, per_page=1)
    body: dict[str, Any] = {
        "name": name,
        "description": described.description,
        "readme": described.readme,
        "readme_html": described.readme_html,
        "visibility": await registry.image_views.visibility(name),
        "updated_at": described.updated_at,
        "tags": tags.total,
        "last_pushed": tags.last_pushed,
    }
    return JSONResponse(body)


async def get(request: Request) -> Response:
    name, _ = await repository_access(request, PULL)
    return await _answer(request, await registry_of(request).repository_info.get(name))


async def patch(request: Request) -> Response:
    if not same_origin(request):
        raise RegistryError(ErrorCode.DENIED, "requests from other sites are refused")
    name, _ = await repository_access(request, PUSH)
    body = await _json(request, MAX_BODY_BYTES)
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise RegistryError(
            ErrorCode.BAD_REQUEST,
            "only description and readme can be changed",
            detail={"fields": unknown[:10]},
        )
    values = {key: body.get(key) for key in FIELDS}
    if not body or any(not isinstance(value, str) for value in body.values()):
        raise RegistryError(
            ErrorCode.BAD_REQUEST, "send description, readme or both, each a string"
        )
    described = await registry_of(request).repository_info.update(
        name, values["description"], values["readme"]
    )
    return await _answer(request, described)
