"""`/api/v1/audit`: the audit log, newest first, a page at a time; for administrators only.

Filters: `since` and `until` (seconds since the epoch, ISO 8601, or `7d`-style durations back
from now), `user` (who acted), `repo`, `action`; `limit` (at most 1000, default 100) and
`cursor` (the previous page's `next`).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.routes.accounts import administrator
from dockyard.api.routes.common import registry_of
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.service.audit import MAX_PAGE, AuditQuery, entry_json, parse_time

DEFAULT_PAGE = 100


def _number(text: str | None, name: str, low: int, high: int) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or not low <= int(text) <= high:
        raise RegistryError(
            ErrorCode.PARAMETER_UNSUPPORTED, f"{name} is a whole number from {low} to {high}"
        )
    return int(text)


def _moment(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise RegistryError(ErrorCode.PARAMETER_UNSUPPORTED, f"{name}: {exc}") from None


async def entries(request: Request) -> Response:
    await administrator(request, changing=False)
    params = request.query_params
    limit = _number(params.get("limit"), "limit", 1, MAX_PAGE) or DEFAULT_PAGE
    query = AuditQuery(
        since=_moment(params.get("since"), "since"),
        until=_moment(params.get("until"), "until"),
        account=params.get("user") or None,
        repository=params.get("repo") or None,
        action=params.get("action") or None,
        before=_number(params.get("cursor"), "cursor", 1, 2**62),
        limit=limit,
    )
    found = await registry_of(request).audit.entries(query)
    following = str(found[-1].id) if len(found) == limit else None
    return JSONResponse({"entries": [entry_json(e) for e in found], "next": following})
