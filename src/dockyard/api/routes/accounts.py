"""`/api/v1/…`: the account API behind `dockyard` admin commands and the web pages to come.

Anything may be read with Basic credentials or a bearer token, as on `/v2/`; managing the
account (tokens, password, users, organisations, members, visibility) takes its password, as on
Docker Hub: access tokens (`dyt_…`) and bearer tokens from `/token` (refresh tokens included)
are for images only, whatever their scope. An access token may still revoke itself.

Browsers are kept out of it: the challenge is Bearer (a Basic one would have them remember the
password and send it along with other sites' requests), bodies must be JSON (which a form on
another site cannot send without a CORS preflight, which is never granted), and a request
whose `Origin` names another site is refused.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.body import read_body
from dockyard.api.origin import same_origin
from dockyard.api.routes.common import auth_of, base_url, caller_of, registry_of
from dockyard.auth.policy import may_administer, may_see_members
from dockyard.auth.requests import Caller
from dockyard.core import jsontext
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import validate_name
from dockyard.proxy import cache_of
from dockyard.service.accounts import AccountService, NamespaceInUse, Principal

MAX_JSON_BYTES = 64 * 1024
_TOO_LARGE = RegistryError(ErrorCode.BODY_TOO_LARGE, "request body too large")
# A century: beyond it an expiry is no longer a time (10**30 seconds overflow a float's date).
MAX_EXPIRES_IN = 100 * 365 * 86400


def _denied(message: str = "requested access to the resource is denied") -> RegistryError:
    return RegistryError(ErrorCode.DENIED, message)


async def _caller(request: Request) -> Caller:
    # Before any credential is checked: a foreign page must not even cost a bcrypt round or
    # count as a failed login.
    if not same_origin(request):
        raise _denied("requests from other sites are refused")
    caller = await caller_of(request, fresh=True)
    if caller is None:
        raise RegistryError(ErrorCode.ENDPOINT_UNKNOWN, "this registry runs without accounts")
    if caller.principal.anonymous:
        gate = auth_of(request).gate  # type: ignore[union-attr]  # accounts are on
        raise RegistryError(
            ErrorCode.UNAUTHORIZED,
            headers={"WWW-Authenticate": gate.challenge(base_url(request), None)},
        )
    return caller


async def _principal(request: Request) -> Principal:
    """Whoever is asking, however they authenticated: for reading."""
    return (await _caller(request)).principal


def _by_password(caller: Caller) -> bool:
    return caller.claims is None and caller.principal.credential is None


async def _manager(request: Request) -> Principal:
    """The caller, when they authenticated with their password (Basic): for any change."""
    caller = await _caller(request)
    if not _by_password(caller):
        raise _denied("managing the account takes its password; tokens are for images only")
    return caller.principal


async def administrator(request: Request, *, changing: bool) -> Principal:
    """The caller, when an administrator: any credential to read, the password to change."""
    principal = await (_manager(request) if changing else _principal(request))
    if not principal.is_admin:
        raise _denied("only an administrator may do this")
    return principal


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def _json(request: Request, limit: int = MAX_JSON_BYTES) -> dict[str, Any]:
    if not _is_json(request.headers.get("content-type")):
        raise RegistryError(ErrorCode.MEDIA_TYPE_UNSUPPORTED, "the body must be application/json")
    body = await read_body(
        request, limit, registry_of(request).settings.body_timeout_seconds, _TOO_LARGE
    )
    try:
        value = jsontext.loads(body or b"{}")
    except ValueError as exc:
        raise RegistryError(ErrorCode.BAD_REQUEST, "the body is not JSON") from exc
    if not isinstance(value, dict):
        raise RegistryError(ErrorCode.BAD_REQUEST, "the body must be a JSON object")
    return value


def _token_json(token: Any) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "scope": token.scope,
        "created_at": token.created_at,
        "expires_at": token.expires_at,
        "revoked": token.revoked_at is not None,
        "last_used_at": token.last_used_at,
    }


def _accounts(request: Request) -> AccountService:
    return registry_of(request).accounts


async def me(request: Request) -> Response:
    principal = await _principal(request)
    return JSONResponse(
        {
            "name": principal.name,
            "admin": principal.is_admin,
            "roles": dict(principal.roles),
            "token_scope": principal.token_scope,
        }
    )


async def tokens(request: Request) -> Response:
    principal = await _manager(request)
    accounts = _accounts(request)
    if request.method == "GET":
        listed = await accounts.tokens_of(principal.name)
        return JSONResponse({"tokens": [_token_json(t) for t in listed]})
    body = await _json(request)
    expires_in = body.get("expires_in")
    if expires_in is not None and (
        not isinstance(expires_in, int | float) or not 0 < expires_in <= MAX_EXPIRES_IN
    ):
        raise RegistryError(
            ErrorCode.BAD_REQUEST,
            f"expires_in is a positive number of seconds, at most {MAX_EXPIRES_IN}",
        )
    name, scope = body.get("name"), body.get("scope", "read")
    if not isinstance(name, str) or not isinstance(scope, str):
        raise RegistryError(
            ErrorCode.BAD_REQUEST, "name and scope are strings (the name is required)"
        )
    try:
        record, secret = await accounts.create_token(principal.name, name, scope, expires_in)
    except KeyError:
        raise RegistryError(ErrorCode.CONFLICT, "a token with that name exists") from None
    except ValueError as exc:
        raise RegistryError(ErrorCode.BAD_REQUEST, str(exc)) from exc
    return JSONResponse({**_token_json(record), "token": secret}, status_code=201)


async def token(request: Request) -> Response:
    caller = await _caller(request)
    principal = caller.principal
    name = request.path_params["token"]
    accounts = _accounts(request)
    if not _by_password(caller):
        # A token may end itself (a leaked one, by whoever holds it), and nothing else.
        own = (
            await accounts.store.get_token(principal.credential)
            if principal.credential is not None
            else None
        )
        if own is None or name not in (own.id, own.name):
            raise _denied("revoking other tokens takes the account's password")
        name = own.id  # by id: another token's id may be this one's name
    if not await accounts.revoke_token(principal.name, name):
        raise RegistryError(ErrorCode.NOT_FOUND, "no such active token")
    return Response(status_code=204)


async def visibility(request: Request) -> Response:
    principal = await _manager(request)
    name = validate_name(request.path_params["name"])
    if not may_administer(principal, name.split("/", 1)[0]):
        raise _denied()
    value = (await _json(request)).get("visibility")
    await _accounts(request).set_visibility(name, str(value))
    return JSONResponse({"repository": name, "visibility": value})


async def namespace_default(request: Request) -> Response:
    """What repositories pushed to a namespace from now on become; those already there keep
    theirs."""
    principal = await _manager(request)
    namespace = request.path_params["namespace"]
    if not may_administer(principal, namespace):
        raise _denied()
    body = await _json(request)
    if "visibility" not in body:
        raise RegistryError(
            ErrorCode.BAD_REQUEST, "visibility is public, private or null (the registry's)"
        )
    accounts = _accounts(request)
    try:
        await accounts.set_namespace_default(namespace, body["visibility"])
    except KeyError:
        raise RegistryError(ErrorCode.NOT_FOUND, "no such user or organisation") from None
    return JSONResponse(
        {
            "namespace": namespace,
            "default_visibility": await accounts.namespace_default(namespace),
        }
    )


async def users(request: Request) -> Response:
    principal = await _manager(request)
    if not principal.is_admin:
        raise _denied()
    accounts = _accounts(request)
    if request.method == "GET":
        listed = await accounts.store.list_accounts("user")
        return JSONResponse({"users": [_user_json(a) for a in listed]})
    body = await _json(request)
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise RegistryError(ErrorCode.BAD_REQUEST, "a password is required")
    try:
        account = await accounts.create_user(
            str(body.get("name", "")), password, admin=bool(body.get("admin", False))
        )
    except KeyError:
        raise RegistryError(ErrorCode.CONFLICT, "that name is taken") from None
    return JSONResponse(_user_json(account), status_code=201)


def _user_json(account: Any) -> dict[str, Any]:
    return {
        "name": account.name,
        "admin": account.is_admin,
        "disabled": account.disabled_at is not None,
    }


async def disabled(request: Request) -> Response:
    """Disable a user or enable them again (`{"disabled": true|false}`), by an administrator:
    never their own account (enabled again by nobody but another administrator), never the
    last enabled administrator."""
    principal = await _manager(request)
    if not principal.is_admin:
        raise _denied()
    name = request.path_params["user"]
    value = (await _json(request)).get("disabled")
    if not isinstance(value, bool):
        raise RegistryError(ErrorCode.BAD_REQUEST, "disabled is true or false")
    accounts = _accounts(request)
    if value and name == principal.name:
        raise RegistryError(ErrorCode.BAD_REQUEST, "you cannot disable your own account")
    changed = await (accounts.disable_user(name) if value else accounts.enable_user(name))
    if not changed:
        raise RegistryError(ErrorCode.NOT_FOUND, "no such user")
    return JSONResponse({"name": name, "disabled": value})


async def user(request: Request) -> Response:
    principal = await _manager(request)
    name = request.path_params["user"]
    accounts = _accounts(request)
    if request.method == "DELETE":
        if not principal.is_admin:
            raise _denied()
        return await _remove_user(request, accounts, name)
    if not principal.is_admin and principal.name != name:
        raise _denied()
    body = await _json(request)
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise RegistryError(ErrorCode.BAD_REQUEST, "a password is required")
    if principal.name == name:
        # Even for an administrator: whoever holds a session must know the password too.
        current = body.get("current_password")
        if not isinstance(current, str) or not current:
            raise RegistryError(ErrorCode.BAD_REQUEST, "current_password is required")
        if not await accounts.password_matches(name, current):
            raise _denied("current_password is not the account's password")
    if not await accounts.set_password(name, password):
        raise RegistryError(ErrorCode.NOT_FOUND, "no such user")
    return Response(status_code=204)


async def _remove_user(request: Request, accounts: AccountService, name: str) -> Response:
    """`?repositories=delete`, or `?repositories=transfer&to=USER`, when it has any."""
    params = request.query_params
    try:
        removed = await accounts.remove_account(name, params.get("repositories"), params.get("to"))
    except NamespaceInUse:
        raise RegistryError(
            ErrorCode.CONFLICT,
            "the account has repositories: say what "
            "becomes of them with ?repositories=delete or "
            "?repositories=transfer&to=USER",
        ) from None
    except KeyError:
        raise RegistryError(
            ErrorCode.BAD_REQUEST, "no such user to receive the repositories"
        ) from None
    except ValueError as exc:
        raise RegistryError(ErrorCode.BAD_REQUEST, str(exc)) from exc
    if not removed:
        raise RegistryError(ErrorCode.NOT_FOUND, "no such user")
    return Response(status_code=204)


async def orgs(request: Request) -> Response:
    principal = await _manager(request)
    name = str((await _json(request)).get("name", ""))
    if not principal.is_admin:
        _refuse_upstream_namespace(request, name)
    try:
        await _accounts(request).create_org(name, principal.name, may_claim=principal.is_admin)
    except KeyError:
        raise RegistryError(ErrorCode.CONFLICT, "that name is taken") from None
    except NamespaceInUse:
        raise _denied(
            "repositories live under that name: only an administrator may claim it"
        ) from None
    return JSONResponse({"name": name, "owner": principal.name}, status_code=201)


def _refuse_upstream_namespace(request: Request, name: str) -> None:
    """With a mirror, every namespace not taken here is the upstream's: whoever created it
    here could push images that the mirror's clients would pull instead of the upstream's.
    So only an administrator claims one (and a cache prefix is nobody's namespace)."""
    proxy = cache_of(registry_of(request))
    if proxy is None:
        return
    if proxy.mirror is not None:
        raise _denied(
            f"this registry mirrors {proxy.mirror.name}, so every organisation name "
            "may be one of its namespaces: only an administrator creates organisations"
        )
    if name in proxy.upstreams:
        raise _denied(f"{name} is the prefix of a pull-through cache, not a namespace")


async def members(request: Request) -> Response:
    """Readable with any credential, by the organisation's members and administrators; to
    anyone else a missing organisation and another's answer alike."""
    principal = await _principal(request)
    org = request.path_params["org"]
    if not may_see_members(principal, org):
        raise _denied()
    accounts = _accounts(request)
    if await accounts.kind_of(org) != "org":
        raise RegistryError(ErrorCode.NOT_FOUND, "no such organisation")
    listed = await accounts.members(org)
    return JSONResponse(
        {"org": org, "members": [{"user": user, "role": role} for user, role in listed]}
    )


async def member(request: Request) -> Response:
    principal = await _manager(request)
    org, user_name = request.path_params["org"], request.path_params["user"]
    if not may_administer(principal, org):
        raise _denied()
    accounts = _accounts(request)
    if request.method == "DELETE":
        if not await accounts.remove_member(org, user_name):
            raise RegistryError(ErrorCode.NOT_FOUND, "not a member")
        return Response(status_code=204)
    role = str((await _json(request)).get("role", "reader"))
    try:
        await accounts.add_member(org, user_name, role)
    except KeyError:
        raise RegistryError(ErrorCode.NOT_FOUND, "no such organisation or user") from None
    except ValueError as exc:
        raise RegistryError(ErrorCode.BAD_REQUEST, str(exc)) from exc
    return JSONResponse({"org": org, "user": user_name, "role": role})
