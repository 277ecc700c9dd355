"""`/api/v1/webhooks`: the webhooks events are delivered to, for administrators only.

POST adds one (`{"url", "format", "repositories", "actions"}`) and answers with its secret,
the only time it is shown; GET lists them with where their delivery stands. DELETE
`/api/v1/webhooks/<id>` removes one with its undelivered events; GET
`/api/v1/webhooks/<id>/deliveries` reads its delivery log, newest first. Changes take the
administrator's password, as every account setting does.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.routes.accounts import _json, administrator
from dockyard.api.routes.common import registry_of
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.service.event_formats import ACTIONS
from dockyard.service.events import delivery_json, webhook_json


def _hook_id(request: Request) -> int:
    raw = request.path_params["webhook"]
    if not raw.isdigit() or len(raw) > 12:
        raise RegistryError(ErrorCode.NOT_FOUND, f"no webhook {raw[:40]}")
    return int(raw)


def _text(body: dict[str, Any], key: str, default: str | None) -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise RegistryError(ErrorCode.BAD_REQUEST, f"`{key}` is a string")
    return value


async def webhooks(request: Request) -> Response:
    events = registry_of(request).events
    if request.method == "GET":
        await administrator(request, changing=False)
        return JSONResponse({"webhooks": [webhook_json(h) for h in await events.all()]})
    await administrator(request, changing=True)
    body = await _json(request)
    actions = body.get("actions", list(ACTIONS))
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise RegistryError(ErrorCode.BAD_REQUEST, "`actions` is a list of strings")
    made = await events.add(
        _text(body, "url", None),
        _text(body, "format", "distribution"),
        _text(body, "repositories", "*"),
        actions,
    )
    return JSONResponse({**webhook_json(made.webhook), "secret": made.secret}, status_code=201)


async def webhook(request: Request) -> Response:
    await administrator(request, changing=True)
    hook_id = _hook_id(request)
    if not await registry_of(request).events.remove(hook_id):
        raise RegistryError(ErrorCode.NOT_FOUND, f"no webhook {hook_id}")
    return Response(status_code=204)


async def deliveries(request: Request) -> Response:
    await administrator(request, changing=False)
    events = registry_of(request).events
    hook_id = _hook_id(request)
    hook = await events.get(hook_id)
    log = await events.deliveries(hook_id)
    return JSONResponse(
        {"webhook": webhook_json(hook), "deliveries": [delivery_json(d) for d in log]}
    )
