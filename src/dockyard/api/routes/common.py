"""What every handler needs: the registry, a validated name, and (with accounts on) the caller
and the access check for what the request is about to do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from starlette.requests import Request

from dockyard.api.proxying import proxied_repository
from dockyard.api.services import SERVICES_KEY
from dockyard.auth.requests import Caller, Need, client_address, plain_address
from dockyard.auth.scopes import PULL
from dockyard.core.bounded_cache import BoundedCache
from dockyard.core.names import validate_name
from dockyard.service.audit import acting
from dockyard.service.registry import Registry
from dockyard.service.repository import Repository

if TYPE_CHECKING:
    from ipaddress import IPv4Network, IPv6Network

    from dockyard.auth.gate import AccessGate
    from dockyard.auth.setup import Auth

    IPNetwork = IPv4Network | IPv6Network

ReadCheck = Callable[[str], Awaitable[bool]]
CALLER_KEY = "dockyard.caller"
BASE_URL_KEY = "dockyard.base_url"
# Left in the scope by a pull's handler whose 200 answer follows from the metadata store
# alone, so `api.hot_reads` may give it again while the store has not changed: None, or for a
# manifest GET (repository, reference, (digest, media type, size)) to note its pull event.
REPLAYABLE_KEY = "dockyard.replayable"


def registry_of(request: Request) -> Registry:
    return request.scope[SERVICES_KEY].registry


def auth_of(request: Request) -> Auth | None:
    return request.scope[SERVICES_KEY].auth


def gate_of(request: Request) -> AccessGate:
    """The access gate, asked for once a caller was identified: so accounts are on."""
    auth = auth_of(request)
    assert auth is not None
    return auth.gate


def repository(request: Request) -> str:
    """The validated repository name; with `?ns=`, the cached repository it stands for."""
    name = validate_name(request.path_params["name"])
    if b"ns=" not in request.scope.get("query_string", b""):
        return name
    return proxied_repository(request.scope, registry_of(request).settings, name)


def query_of(request: Request) -> dict[str, str]:
    """The query's parameters, the last of a repeated one winning: what Starlette's
    `request.query_params` answers, without its multi-dict (a listing's page is asked for
    little more)."""
    return dict(parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True))


def header(request: Request, name: bytes) -> str | None:
    """One request header by its lower-case name, read from the ASGI scope's list: on the
    token-checked path, Starlette's `request.headers` lookups cost too much (bench/README.md)."""
    for key, value in request.scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def base_url(request: Request) -> str:
    """Where clients reach us (for challenges): the configured public URL, else the listen
    address. Not the Host header: a client could name any host there and have the challenge
    send the next client's password to it."""
    scope = request.scope
    cached = scope.get(BASE_URL_KEY)
    if cached is None:
        settings = registry_of(request).settings
        cached = scope[BASE_URL_KEY] = settings.public_base() + "/"
    return cached


async def caller_of(request: Request, *, fresh: bool = False) -> Caller | None:
    """Who is asking; None when the registry runs without accounts. `fresh` skips the short
    in-memory memory of recent logins (for account changes, which must see the latest)."""
    auth = auth_of(request)
    if auth is None:
        return None
    return await _caller(request, auth.gate, fresh)


async def _caller(request: Request, gate: AccessGate, fresh: bool = False) -> Caller:
    scope = request.scope
    caller = scope.get(CALLER_KEY)
    if caller is None:
        authorization = header(request, b"authorization")
        address = _address(request, gate.trusted)
        if authorization and not fresh:  # the common case, a token seen before: no awaiting
            caller = gate.known_bearer(authorization, address)
        if caller is None:
            caller = await gate.identify(
                authorization, address, lambda: base_url(request), fresh=fresh
            )
        scope[CALLER_KEY] = caller
        acting(caller.principal.name, caller.principal.token_name, caller.address)
    return caller


def caller_address(request: Request) -> str:
    """The client's address; X-Forwarded-For counts only from a trusted proxy."""
    auth = auth_of(request)
    return _address(request, auth.gate.trusted if auth is not None else [])


def _address(request: Request, trusted: list[IPNetwork]) -> str:
    client = request.scope.get("client")
    peer = client[0] if client else ""
    if not trusted:  # X-Forwarded-For is never believed: no need to read it
        return plain_address(peer)
    return client_address(peer, request.headers.get("x-forwarded-for"), trusted)


async def require(request: Request, need: Need) -> Caller | None:
    auth = auth_of(request)
    if auth is None:
        return None
    gate = auth.gate
    caller = await _caller(request, gate)
    bearer = None
    if caller.claims is not None and need.kind == "repository":
        bearer = (header(request, b"authorization") or "", _address(request, gate.trusted))
    await gate.authorize(
        caller, need, lambda: base_url(request), request.scope.get("client"), bearer
    )
    return caller


async def repository_access(request: Request, *actions: str) -> tuple[str, Caller | None]:
    """The validated repository name, once the caller may do `actions` to it."""
    name = repository(request)
    auth = auth_of(request)
    if auth is None:
        return name, None
    scope = request.scope
    if CALLER_KEY not in scope:  # a bearer seen lately, its token covering this: one lookup
        authorization = header(request, b"authorization")
        if authorization:
            gate = auth.gate
            caller = gate.granted(authorization, _address(request, gate.trusted), name, actions)
            if caller is not None:
                scope[CALLER_KEY] = caller
                acting(caller.principal.name, caller.principal.token_name, caller.address)
                return name, caller
    return name, await require(request, _need(name, actions))


_NEEDS: BoundedCache[tuple[str, tuple[str, ...]], Need] = BoundedCache(10_000)


def _need(name: str, actions: tuple[str, ...]) -> Need:
    """Needs are immutable and few: built once, not per request (bench/README.md)."""
    need = _NEEDS.get((name, actions))
    if need is None:
        need = Need("repository", name, frozenset(actions))
        _NEEDS.put((name, actions), need)
    return need


def read_check(request: Request, caller: Caller | None) -> ReadCheck | None:
    """May the caller read another repository (for mounts)? None: everything is readable.
    A bearer's token must grant pull there too: the account's roles are not the token's."""
    if caller is None:
        return None
    gate = gate_of(request)

    async def may_read(name: str) -> bool:
        if caller.claims is not None and not gate.token_grants(caller, _need(name, (PULL,))):
            return False
        return bool(await gate.may_pull(caller, [name]))

    return may_read


async def count_pull(request: Request, caller: Caller | None, headers: dict[str, str]) -> None:
    """Count a manifest read, by whichever route, against the caller's pull limit: adds the
    RateLimit headers to `headers`, or raises TOOMANYREQUESTS."""
    if caller is None:
        return
    gate = gate_of(request)
    if not gate.count_pull_now(caller, headers):
        headers.update(await gate.count_pull(caller))


async def pull_headers(request: Request, caller: Caller) -> dict[str, str]:
    """The caller's RateLimit headers, counting nothing (for HEAD)."""
    return await gate_of(request).pull_headers(caller)


def repository_of(request: Request, name: str) -> Repository:
    """The repository `name` names, local or cached: call after `repository_access`, which
    identified the caller (a mirror answers a local repository the caller may not see)."""
    return registry_of(request).repository(name, lambda: _hidden(request, name))


async def _hidden(request: Request, name: str) -> bool:
    caller = request.scope.get(CALLER_KEY)
    auth = auth_of(request)
    return caller is not None and auth is not None and await auth.gate.hides(caller.principal, name)
