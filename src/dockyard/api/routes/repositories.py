"""`/api/v1/repositories/NAME` (DELETE) and `/api/v1/usage`: whole repositories and what they store.

Deleting a repository is a namespace setting's kind of change: its owners and administrators,
with the account's password (never an access token, whatever its scope), as for visibility.
A registry without accounts lets anyone delete, as its `/v2/` lets anyone delete manifests.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.event_origin import note_origin
from dockyard.api.origin import same_origin
from dockyard.api.routes.accounts import _manager, _principal
from dockyard.api.routes.common import auth_of, caller_of, registry_of
from dockyard.auth.policy import may_administer
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import validate_name
from dockyard.service.accounts import Principal
from dockyard.service.repositories import UsageReport


def _denied() -> RegistryError:
    return RegistryError(ErrorCode.DENIED, "requested access to the resource is denied")


async def delete(request: Request) -> Response:
    name = validate_name(request.path_params["name"])
    if auth_of(request) is None:
        if not same_origin(request):
            raise RegistryError(ErrorCode.DENIED, "requests from other sites are refused")
    else:
        principal = await _manager(request)
        if not may_administer(principal, name.split("/", 1)[0]):
            raise _denied()
    note_origin(request, await caller_of(request))
    removed = await registry_of(request).repositories.delete(name)
    return JSONResponse(
        {
            "repository": name,
            "tags": removed.tags,
            "manifests": removed.manifests,
            "blob_links": removed.blob_links,
            "uploads": len(removed.uploads),
        }
    )


async def usage(request: Request) -> Response:
    wanted = request.query_params.get("namespace")
    if wanted is not None:
        if "/" in wanted:
            raise RegistryError(ErrorCode.BAD_REQUEST, "a namespace is one name, without '/'")
        validate_name(wanted)
    principal: Principal | None = None
    if auth_of(request) is not None:
        principal = await _principal(request)
    elif not same_origin(request):
        raise RegistryError(ErrorCode.DENIED, "requests from other sites are refused")
    service = registry_of(request).repositories
    if principal is None or (principal.is_admin and principal.token_scope is None):
        report = await service.usage(None if wanted is None else [wanted])
    elif wanted is not None:
        if not may_administer(principal, wanted):
            raise _denied()
        report = await service.usage([wanted])
    else:
        owned = [ns for ns in owned_namespaces(principal) if may_administer(principal, ns)]
        if not owned:
            raise _denied()
        report = await service.usage(owned)
    return JSONResponse(usage_json(report))


def owned_namespaces(principal: Principal) -> list[str]:
    """The namespaces whose settings `principal` manages: its own and its organisations'."""
    return sorted({principal.name, *principal.roles})


def usage_json(report: UsageReport) -> dict[str, Any]:
    """The report as `/api/v1/usage` and `dockyard usage --json` give it."""
    body: dict[str, Any] = {
        "namespaces": [
            {
                "name": ns.name,
                "repositories": ns.repositories,
                "blobs": ns.blobs,
                "bytes": ns.bytes,
                "shared_bytes": ns.shared_bytes,
            }
            for ns in report.namespaces
        ],
        "repositories": [
            {"name": repo.name, "blobs": repo.blobs, "bytes": repo.bytes}
            for repo in report.repositories
        ],
    }
    if report.total is not None:
        body["total"] = {"blobs": report.total.blobs, "bytes": report.total.bytes}
    if report.storage is not None:
        body["storage"] = {
            "kind": report.storage.kind,
            "used_bytes": report.storage.used_bytes,
            "total_bytes": report.storage.total_bytes,
        }
    return body
