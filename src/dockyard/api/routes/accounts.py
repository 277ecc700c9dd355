"""`/api/v1/…`: the account API behind `dockyard` admin commands and the web pages to come.

Callers authenticate with Basic credentials or a bearer token, as on `/v2/`. Creating access
tokens takes a password login: a token cannot mint more tokens.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.routes.common import caller_of, registry_of
from dockyard.auth.policy import may_administer
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import validate_name
from dockyard.service.accounts import AccountService, Principal

MAX_JSON_BYTES = 64 * 1024


def _denied(message: str = "requested access to the resource is denied") -> RegistryError:
    return RegistryError(ErrorCode.DENIED, message)


async def _principal(request: Request) -> Principal:
    caller = await caller_of(request, fresh=True)
    if caller is None:
        raise RegistryError(ErrorCode.UNSUPPORTED, "this registry runs without accounts",
                            status=404)
    if caller.principal.anonymous:
        raise RegistryError(ErrorCode.UNAUTHORIZED, headers={
            "WWW-Authenticate": 'Basic realm="dockyard"'})
    return caller.principal


async def _json(request: Request) -> dict[str, Any]:
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise RegistryError(ErrorCode.UNSUPPORTED, "request body too large", status=413)
    try:
        value = json.loads(body or b"{}")
    except ValueError as exc:
        raise RegistryError(ErrorCode.UNSUPPORTED, "the body is not JSON", status=400) from exc
    if not isinstance(value, dict):
        raise RegistryError(ErrorCode.UNSUPPORTED, "the body must be a JSON object", status=400)
    return value


def _token_json(token: Any) -> dict[str, Any]:
    return {"id": token.id, "name": token.name, "scope": token.scope,
            "created_at": token.created_at, "expires_at": token.expires_at,
            "revoked": token.revoked_at is not None, "last_used_at": token.last_used_at}


def _accounts(request: Request) -> AccountService:
    return registry_of(request).accounts


async def me(request: Request) -> Response:
    principal = await _principal(request)
    return JSONResponse({"name": principal.name, "admin": principal.is_admin,
                         "roles": dict(principal.roles), "token_scope": principal.token_scope})


async def tokens(request: Request) -> Response:
    principal = await _principal(request)
    accounts = _accounts(request)
    if request.method == "GET":
        listed = await accounts.store.list_tokens(principal.name)
        return JSONResponse({"tokens": [_token_json(t) for t in listed]})
    if principal.credential is not None:
        raise _denied("log in with a password to create access tokens")
    body = await _json(request)
    expires_in = body.get("expires_in")
    if expires_in is not None and (not isinstance(expires_in, int | float) or expires_in <= 0):
        raise RegistryError(ErrorCode.UNSUPPORTED, "expires_in is a positive number of "
                            "seconds", status=400)
    try:
        record, secret = await accounts.create_token(principal.name, str(body.get("name", "")),
                                                     str(body.get("scope", "read")), expires_in)
    except KeyError:
        raise RegistryError(ErrorCode.UNSUPPORTED, "a token with that name exists",
                            status=409) from None
    except ValueError as exc:
        raise RegistryError(ErrorCode.UNSUPPORTED, str(exc), status=400) from exc
    return JSONResponse({**_token_json(record), "token": secret}, status_code=201)


async def token(request: Request) -> Response:
    principal = await _principal(request)
    name = request.path_params["token"]
    if not await _accounts(request).store.revoke_token(principal.name, name, time.time()):
        raise RegistryError(ErrorCode.UNSUPPORTED, "no such active token", status=404)
    return Response(status_code=204)


async def visibility(request: Request) -> Response:
    principal = await _principal(request)
    name = validate_name(request.path_params["name"])
    if not may_administer(principal, name.split("/", 1)[0]):
        raise _denied()
    value = (await _json(request)).get("visibility")
    await _accounts(request).set_visibility(name, str(value))
    return JSONResponse({"repository": name, "visibility": value})


async def users(request: Request) -> Response:
    principal = await _principal(request)
    if not principal.is_admin or principal.token_scope is not None:
        raise _denied()
    accounts = _accounts(request)
    if request.method == "GET":
        listed = await accounts.store.list_accounts("user")
        return JSONResponse({"users": [{"name": a.name, "admin": a.is_admin} for a in listed]})
    body = await _json(request)
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise RegistryError(ErrorCode.UNSUPPORTED, "a password is required", status=400)
    try:
        account = await accounts.create_user(str(body.get("name", "")), password,
                                             admin=bool(body.get("admin", False)))
    except KeyError:
        raise RegistryError(ErrorCode.UNSUPPORTED, "that name is taken", status=409) from None
    return JSONResponse({"name": account.name, "admin": account.is_admin}, status_code=201)


async def user(request: Request) -> Response:
    principal = await _principal(request)
    name = request.path_params["user"]
    self_service = principal.name == name and principal.credential is None
    if not (principal.is_admin and principal.token_scope is None) and not (
            self_service and request.method == "PUT"):
        raise _denied()
    accounts = _accounts(request)
    if request.method == "DELETE":
        if not await accounts.store.delete_account(name):
            raise RegistryError(ErrorCode.UNSUPPORTED, "no such user", status=404)
        return Response(status_code=204)
    password = (await _json(request)).get("password")
    if not isinstance(password, str) or not password:
        raise RegistryError(ErrorCode.UNSUPPORTED, "a password is required", status=400)
    if not await accounts.set_password(name, password):
        raise RegistryError(ErrorCode.UNSUPPORTED, "no such user", status=404)
    return Response(status_code=204)


async def orgs(request: Request) -> Response:
    principal = await _principal(request)
    if principal.token_scope is not None:
        raise _denied("log in with a password to create organisations")
    name = str((await _json(request)).get("name", ""))
    if not principal.is_admin:
        _refuse_upstream_namespace(request, name)
    try:
        await _accounts(request).create_org(name, principal.name)
    except KeyError:
        raise RegistryError(ErrorCode.UNSUPPORTED, "that name is taken", status=409) from None
    return JSONResponse({"name": name, "owner": principal.name}, status_code=201)


def _refuse_upstream_namespace(request: Request, name: str) -> None:
    """With a mirror, every namespace not taken here is the upstream's: whoever created it
    here could push images that the mirror's clients would pull instead of the upstream's.
    So only an administrator claims one (and a cache prefix is nobody's namespace)."""
    proxy = registry_of(request).proxy
    if proxy is None:
        return
    if proxy.mirror is not None:
        raise _denied(f"this registry mirrors {proxy.mirror.name}, so every organisation name "
                      "may be one of its namespaces: only an administrator creates organisations")
    if name in proxy.upstreams:
        raise _denied(f"{name} is the prefix of a pull-through cache, not a namespace")


async def member(request: Request) -> Response:
    principal = await _principal(request)
    org, user_name = request.path_params["org"], request.path_params["user"]
    if not may_administer(principal, org):
        raise _denied()
    accounts = _accounts(request)
    if request.method == "DELETE":
        if not await accounts.store.remove_membership(org, user_name):
            raise RegistryError(ErrorCode.UNSUPPORTED, "not a member", status=404)
        return Response(status_code=204)
    role = str((await _json(request)).get("role", "reader"))
    try:
        await accounts.add_member(org, user_name, role)
    except KeyError:
        raise RegistryError(ErrorCode.UNSUPPORTED, "no such organisation or user",
                            status=404) from None
    except ValueError as exc:
        raise RegistryError(ErrorCode.UNSUPPORTED, str(exc), status=400) from exc
    return JSONResponse({"org": org, "user": user_name, "role": role})
