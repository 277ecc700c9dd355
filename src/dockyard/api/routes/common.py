"""What every handler needs: the registry, a validated name, and (with accounts on) the caller
and the access check for what the request is about to do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request

from dockyard.auth.requests import Caller, Need, client_address
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import validate_name
from dockyard.service.registry import Registry

if TYPE_CHECKING:
    from dockyard.service.proxy import Route

ReadCheck = Callable[[str], Awaitable[bool]]
CALLER_KEY = "dockyard.caller"
BASE_URL_KEY = "dockyard.base_url"


def registry_of(request: Request) -> Registry:
    return request.app.state.registry


def repository(request: Request) -> str:
    return validate_name(request.path_params["name"])


def base_url(request: Request) -> str:
    """Where the client reached us (for challenges and Link headers), as Starlette's
    `request.base_url` gives it, without building URL objects: that was a tenth of a
    token-checked pull in py-spy."""
    cached = request.scope.get(BASE_URL_KEY)
    if cached is None:
        scope = request.scope
        host = request.headers.get("host")
        if not host:
            server = scope.get("server")
            host = f"{server[0]}:{server[1]}" if server else "localhost"
        root = scope.get("root_path", "").rstrip("/")
        cached = request.scope[BASE_URL_KEY] = f"{scope.get('scheme', 'http')}://{host}{root}/"
    return cached


async def caller_of(request: Request, *, fresh: bool = False) -> Caller | None:
    """Who is asking; None when the registry runs without accounts. `fresh` skips the short
    in-memory memory of recent logins (for account changes, which must see the latest)."""
    auth = request.app.state.auth
    if auth is None:
        return None
    caller = request.scope.get(CALLER_KEY)
    if caller is None:
        caller = await auth.gate.identify(
            request.headers.get("authorization"), caller_address(request), base_url(request),
            fresh=fresh,
        )
        request.scope[CALLER_KEY] = caller
    return caller


def caller_address(request: Request) -> str:
    """The client's address; X-Forwarded-For counts only from a trusted proxy."""
    peer = request.client.host if request.client else ""
    auth = request.app.state.auth
    trusted = auth.gate.trusted if auth is not None else []
    return client_address(peer, request.headers.get("x-forwarded-for"), trusted)


async def require(request: Request, need: Need) -> Caller | None:
    caller = await caller_of(request)
    if caller is not None:
        await request.app.state.auth.gate.authorize(caller, need, base_url(request))
    return caller


async def repository_access(request: Request, *actions: str) -> tuple[str, Caller | None]:
    """The validated repository name, once the caller may do `actions` to it."""
    name = repository(request)
    caller = await require(request, Need("repository", name, frozenset(actions)))
    return name, caller


def read_check(request: Request, caller: Caller | None) -> ReadCheck | None:
    """May the caller read another repository (for mounts)? None: everything is readable."""
    if caller is None:
        return None
    gate = request.app.state.auth.gate

    async def may_read(name: str) -> bool:
        return bool(await gate.may_pull(caller, [name]))

    return may_read


READ_ONLY_CACHE = "cached repositories are read-only: push to a repository of your own"


async def cache_route(request: Request, name: str, *, writing: bool = False) -> Route | None:
    """The pull-through cache route for `name`, refusing writes to it (UNSUPPORTED).

    A write to a name only the mirror would answer creates an ordinary local repository
    instead (which then shadows the mirror for that name, as a local repository should)."""
    proxy = registry_of(request).proxy
    route = await proxy.route(name) if proxy is not None else None
    if route is not None and writing:
        if route.local != name:  # reached through the mirror: the name is free locally
            return None
        raise RegistryError(ErrorCode.UNSUPPORTED, READ_ONLY_CACHE)
    return route
