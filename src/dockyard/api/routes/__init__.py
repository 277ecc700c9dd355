"""One module per resource of the Distribution API; `table()` binds them to paths."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dockyard.api.routes import (
    accounts,
    audit,
    base,
    blobs,
    catalog,
    gc,
    manifests,
    openapi,
    policies,
    referrers,
    repositories,
    repository_info,
    tag_details,
    tags,
    token,
    uploads,
    webhooks,
)
from dockyard.core.errors import ErrorCode, RegistryError

NAME = "/v2/{name:path}"
MANIFESTS = f"{NAME}/manifests/{{reference}}"
BLOBS = f"{NAME}/blobs/{{digest}}"
CATALOG = "/v2/_catalog"
TAGS = f"{NAME}/tags/list"
Handler = Callable[[Request], Awaitable[Any]]
READS = frozenset({"GET", "HEAD"})


async def refuse_writes(request: Request) -> Response:
    """A path that takes only writes, on a read-only registry: answered as a write to any
    other path is (a path registered for no method would be answered 404)."""
    raise RegistryError(ErrorCode.UNSUPPORTED, "this registry is read-only")


def by_method(path: str, handlers: dict[str, Handler], is_read_only: bool) -> Route:
    """One route for the methods of one path, each with its own handler. A read-only registry
    registers only the reads: Starlette answers any other method 405, in the spec's format
    (`api.errors`). Dispatching here keeps one pattern per path for Starlette to try. HEAD
    goes where GET goes unless it has a handler of its own, as Starlette's own routes do."""
    if "GET" in handlers:
        handlers = {"HEAD": handlers["GET"], **handlers}
    if is_read_only:
        handlers = {method: h for method, h in handlers.items() if method in READS}
        if not handlers:
            return Route(path, refuse_writes)
    if len(set(handlers.values())) == 1:
        return Route(path, next(iter(handlers.values())), methods=list(handlers))

    async def dispatch(request: Request) -> Any:
        return await handlers[request.method](request)

    return Route(path, dispatch, methods=list(handlers))


def table(is_read_only: bool) -> list[Route]:
    def route(path: str, **handlers: Handler) -> Route:
        return by_method(path, handlers, is_read_only)

    # The routes of pushes and pulls first: Starlette tries each pattern in turn, and these
    # are nearly every request. No path matches both one of them and a route below.
    return [
        route(
            MANIFESTS,
            GET=manifests.get,
            PUT=manifests.put,
            DELETE=manifests.delete,
        ),
        route(f"{NAME}/blobs/uploads/", POST=uploads.start),
        # Without the slash too: a redirect would make clients re-send a POST body.
        route(f"{NAME}/blobs/uploads", POST=uploads.start),
        route(
            f"{NAME}/blobs/uploads/{{upload_id}}",
            GET=uploads.status,
            PATCH=uploads.append,
            PUT=uploads.finish,
            DELETE=uploads.cancel,
        ),
        route(BLOBS, GET=blobs.get, DELETE=blobs.delete),
        Route("/v2/", base.version_check, methods=["GET"]),
        Route("/token", token.issue, methods=["GET", "POST"]),
        Route("/api/v1/openapi.json", openapi.document, methods=["GET"]),
        Route("/api/v1/me", accounts.me, methods=["GET"]),
        Route("/api/v1/tokens", accounts.tokens, methods=["GET", "POST"]),
        Route("/api/v1/tokens/{token}", accounts.token, methods=["DELETE"]),
        Route("/api/v1/users", accounts.users, methods=["GET", "POST"]),
        Route("/api/v1/users/{user}", accounts.user, methods=["PUT", "DELETE"]),
        Route("/api/v1/users/{user}/disabled", accounts.disabled, methods=["PUT"]),
        Route("/api/v1/orgs", accounts.orgs, methods=["POST"]),
        Route("/api/v1/orgs/{org}/members", accounts.members, methods=["GET"]),
        Route("/api/v1/orgs/{org}/members/{user}", accounts.member, methods=["PUT", "DELETE"]),
        Route("/api/v1/repositories/{name:path}/visibility", accounts.visibility, methods=["PUT"]),
        Route(
            "/api/v1/namespaces/{namespace}/default-visibility",
            accounts.namespace_default,
            methods=["PUT"],
        ),
        route(
            "/api/v1/repositories/{name:path}",
            GET=repository_info.get,
            PATCH=repository_info.patch,
            DELETE=repositories.delete,
        ),
        Route("/api/v1/usage", repositories.usage, methods=["GET"]),
        Route("/api/v1/gc", gc.report, methods=["GET", "POST"]),
        Route("/api/v1/webhooks", webhooks.webhooks, methods=["GET", "POST"]),
        Route("/api/v1/webhooks/{webhook}", webhooks.webhook, methods=["DELETE"]),
        Route("/api/v1/webhooks/{webhook}/deliveries", webhooks.deliveries, methods=["GET"]),
        Route("/api/v1/audit", audit.entries, methods=["GET"]),
        Route(
            "/api/v1/policies/immutable/{scope:path}",
            policies.immutable,
            methods=["GET", "PUT", "DELETE"],
        ),
        Route("/api/v1/policies/quota/{scope}", policies.quota, methods=["GET", "PUT"]),
        Route(
            "/api/v1/policies/retention/{scope:path}",
            policies.retention,
            methods=["GET", "PUT", "DELETE"],
        ),
        Route(
            "/api/v1/policies/signed/{scope:path}",
            policies.signed,
            methods=["GET", "PUT", "DELETE"],
        ),
        Route(CATALOG, catalog.list_repositories, methods=["GET"]),
        Route(TAGS, tags.list_tags, methods=["GET"]),
        Route(f"{NAME}/_dockyard/tags", tag_details.list_tag_details, methods=["GET"]),
        Route(f"{NAME}/_dockyard/tag-history/{{tag}}", tag_details.tag_history, methods=["GET"]),
        Route(f"{NAME}/referrers/{{digest}}", referrers.list_referrers, methods=["GET"]),
    ]
