"""One module per resource of the Distribution API; `table()` binds them to paths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dockyard.api.responses import BlobResponse
from dockyard.api.routes import (
    accounts,
    base,
    blobs,
    catalog,
    manifests,
    openapi,
    referrers,
    tags,
    token,
    uploads,
)
from dockyard.core.errors import ErrorCode, RegistryError

NAME = "/v2/{name:path}"
Handler = Callable[[Request], Awaitable[Response | BlobResponse]]
READS = frozenset({"GET", "HEAD"})


def read_only(handler: Handler) -> Handler:
    """Refuse every mutating method with UNSUPPORTED (405), as a read-only registry must."""

    async def guarded(request: Request) -> Response | BlobResponse:
        if request.method not in READS:
            raise RegistryError(ErrorCode.UNSUPPORTED, "this registry is read-only")
        return await handler(request)

    return guarded


def table(is_read_only: bool) -> list[Route]:
    wrap = read_only if is_read_only else (lambda handler: handler)
    # The routes of pushes and pulls first: Starlette tries each pattern in turn, and these
    # are nearly every request. No path matches both one of them and a route below.
    return [
        Route(
            f"{NAME}/manifests/{{reference}}",
            wrap(manifests.endpoint),
            methods=["GET", "HEAD", "PUT", "DELETE"],
        ),
        Route(f"{NAME}/blobs/uploads/", wrap(uploads.start), methods=["POST"]),
        # Without the slash too: a redirect would make clients re-send a POST body.
        Route(f"{NAME}/blobs/uploads", wrap(uploads.start), methods=["POST"]),
        Route(
            f"{NAME}/blobs/uploads/{{upload_id}}",
            wrap(uploads.session),
            methods=["GET", "PATCH", "PUT", "DELETE"],
        ),
        Route(f"{NAME}/blobs/{{digest}}", wrap(blobs.endpoint), methods=["GET", "HEAD", "DELETE"]),
        Route("/v2/", base.version_check, methods=["GET"]),
        Route("/token", token.issue, methods=["GET", "POST"]),
        Route("/api/v1/openapi.json", openapi.document, methods=["GET"]),
        Route("/api/v1/me", accounts.me, methods=["GET"]),
        Route("/api/v1/tokens", accounts.tokens, methods=["GET", "POST"]),
        Route("/api/v1/tokens/{token}", accounts.token, methods=["DELETE"]),
        Route("/api/v1/users", accounts.users, methods=["GET", "POST"]),
        Route("/api/v1/users/{user}", accounts.user, methods=["PUT", "DELETE"]),
        Route("/api/v1/orgs", accounts.orgs, methods=["POST"]),
        Route("/api/v1/orgs/{org}/members/{user}", accounts.member, methods=["PUT", "DELETE"]),
        Route("/api/v1/repositories/{name:path}/visibility", accounts.visibility,
              methods=["PUT"]),
        Route("/v2/_catalog", catalog.list_repositories, methods=["GET"]),
        Route(f"{NAME}/tags/list", tags.list_tags, methods=["GET"]),
        Route(f"{NAME}/referrers/{{digest}}", referrers.list_referrers, methods=["GET"]),
    ]
