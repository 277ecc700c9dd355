"""`/api/v1/policies/quota/<namespace>`: a namespace's storage quota and usage.

`/api/v1/policies/retention/<namespace or repository>`: retention policies, each change shown
first as a dry run (`?dry_run=true`), by the scope's owners and administrators.

`/api/v1/policies/immutable/<namespace or repository>`: the immutable tag rules of a scope,
set (PUT, `{"pattern": "v*"}`), removed (DELETE `?pattern=v*`) and listed (GET) by its owners
and administrators. Changes take the password, as every account setting does.

`/api/v1/policies/signed/<namespace or repository>`: the signature policy of a scope (the
keys and notation roots its manifests must be signed under, and the mode), set (PUT),
removed (DELETE) and read (GET, with those of a namespace's repositories) likewise."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.routes.accounts import _denied, _json, _manager, _principal
from dockyard.api.routes.common import registry_of
from dockyard.auth.policy import may_administer
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import validate_name
from dockyard.service.accounts import Principal
from dockyard.service.quotas import human
from dockyard.service.retention import checked_policy


def _scope(request: Request, principal: Principal) -> str:
    scope = validate_name(request.path_params["scope"])
    if not may_administer(principal, scope.split("/", 1)[0]):
        raise _denied()
    return scope


def _rule_json(rule: Any) -> dict[str, Any]:
    return {"scope": rule.scope, "pattern": rule.pattern, "created_at": rule.created_at}


async def _pattern_of(request: Request) -> str:
    pattern = (await _json(request)).get("pattern")
    if not isinstance(pattern, str):
        raise RegistryError(ErrorCode.BAD_REQUEST, "the body names a `pattern` (a string)")
    return pattern


async def immutable(request: Request) -> Response:
    rules = registry_of(request).tag_rules
    if request.method == "GET":
        scope = _scope(request, await _principal(request))
        return JSONResponse({"rules": [_rule_json(r) for r in await rules.rules(scope)]})
    scope = _scope(request, await _manager(request))
    if request.method == "PUT":
        pattern = await _pattern_of(request)
        added = await rules.add(scope, pattern)
        return JSONResponse({"scope": scope, "pattern": pattern}, status_code=201 if added else 200)
    named = request.query_params.get("pattern")
    if named is None:
        raise RegistryError(ErrorCode.BAD_REQUEST, "name the rule to remove: ?pattern=")
    if not await rules.remove(scope, named):
        raise RegistryError(ErrorCode.NOT_FOUND, f"no rule `{named[:200]}` on {scope}")
    return Response(status_code=204)


def _quota_json(quota: Any) -> dict[str, Any]:
    return {
        "namespace": quota.namespace,
        "limit": quota.limit,
        "used": quota.used,
        "summary": f"{human(quota.used)} used, "
        + ("no quota" if quota.limit is None else f"quota {human(quota.limit)}"),
    }


async def quota(request: Request) -> Response:
    """GET: the namespace's owners and administrators; PUT: administrators only (an owner
    raising their own quota would make it no limit)."""
    quotas = registry_of(request).quotas
    if request.method == "GET":
        namespace = _scope(request, await _principal(request))
        return JSONResponse(_quota_json(await quotas.get(namespace)))
    principal = await _manager(request)
    if not principal.is_admin:
        raise _denied("quotas are set by administrators")
    body = await _json(request)
    if "limit" not in body:
        raise RegistryError(ErrorCode.BAD_REQUEST, "the body names a `limit`")
    limit = body["limit"]
    if isinstance(limit, bool) or not isinstance(limit, (str, int, type(None))):
        raise RegistryError(ErrorCode.BAD_REQUEST, "a limit is a size (10GiB), bytes or null")
    namespace = validate_name(request.path_params["scope"])
    return JSONResponse(_quota_json(await quotas.set(namespace, limit)))


def _expiry_json(expiry: Any) -> dict[str, Any]:
    return {
        "repository": expiry.repository,
        "tag": expiry.tag,
        "digest": expiry.digest,
        "pushed_at": expiry.pushed_at,
        "policy": expiry.policy,
    }


def _policy_json(policy: Any) -> dict[str, Any]:
    return {
        "scope": policy.scope,
        "keep_last": policy.keep_last,
        "older_than_seconds": policy.older_than_seconds,
        "keep": policy.keep_pattern,
    }


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
        raise RegistryError(ErrorCode.BAD_REQUEST, f"`{key}` is a {kind.__name__} or null")
    return value


async def retention(request: Request) -> Response:
    service = registry_of(request).retention
    if request.method == "GET":
        scope = _scope(request, await _principal(request))
        return JSONResponse(
            {
                "policies": [_policy_json(p) for p in await service.policies(scope)],
                "expiring": [_expiry_json(e) for e in await service.plan(scope)],
            }
        )
    scope = _scope(request, await _manager(request))
    if request.method == "DELETE":
        if not await service.remove(scope):
            raise RegistryError(ErrorCode.NOT_FOUND, f"no retention policy on {scope}")
        return Response(status_code=204)
    body = await _json(request)
    policy = checked_policy(
        scope,
        _optional(body, "keep_last", int),
        _optional(body, "older_than", str),
        _optional(body, "keep", str),
    )
    dry_run = request.query_params.get("dry_run", "false").lower() in ("1", "true", "yes")
    plan = await service.plan(scope, policy)
    if not dry_run:
        await service.set(policy)
    return JSONResponse(
        {
            "policy": _policy_json(policy),
            "dry_run": dry_run,
            "expiring": [_expiry_json(e) for e in plan],
        }
    )


def _signature_policy_json(policy: Any) -> dict[str, Any]:
    return {
        "scope": policy.scope,
        "mode": policy.mode,
        "keys": list(policy.public_keys),
        "roots": list(policy.roots),
        "version": policy.version,
        "updated_at": policy.updated_at,
    }


def _list_of(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise RegistryError(ErrorCode.BAD_REQUEST, f"`{key}` is a list of PEM texts")
    return value


# Keys and certificates are a few KiB of PEM each; the service bounds their count and size.
MAX_POLICY_BYTES = 1024 * 1024


async def signed(request: Request) -> Response:
    service = registry_of(request).signature_policies
    if request.method == "GET":
        scope = _scope(request, await _principal(request))
        return JSONResponse(
            {"policies": [_signature_policy_json(p) for p in await service.policies(scope)]}
        )
    scope = _scope(request, await _manager(request))
    if request.method == "DELETE":
        if not await service.remove(scope):
            raise RegistryError(ErrorCode.NOT_FOUND, f"no signature policy on {scope}")
        return Response(status_code=204)
    body = await _json(request, MAX_POLICY_BYTES)
    mode = body.get("mode", "enforce")
    if not isinstance(mode, str):
        raise RegistryError(ErrorCode.BAD_REQUEST, "`mode` is enforce, warn or off")
    policy = await service.set(scope, _list_of(body, "keys"), _list_of(body, "roots"), mode)
    return JSONResponse(_signature_policy_json(policy))
