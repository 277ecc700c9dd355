"""The request behind a change, noted for the event the metadata store writes with it
(`core/event_origin.py`): only by the handlers that change something, and by manifest GETs when
pull events are on, so that other requests pay nothing for it."""

from __future__ import annotations

import uuid

from starlette.requests import Request

from dockyard.auth.requests import Caller
from dockyard.core.event_origin import EventOrigin, set_origin


def note_origin(request: Request, caller: Caller | None) -> EventOrigin:
    client = request.scope.get("client")
    headers = request.headers
    origin = EventOrigin(
        actor=caller.principal.name if caller is not None else "",
        request_id=headers.get("x-request-id", "")[:128] or str(uuid.uuid4()),
        addr=f"{client[0]}:{client[1]}" if client else "",
        host=headers.get("host", "")[:255],
        method=request.method,
        useragent=headers.get("user-agent", "")[:512],
    )
    set_origin(origin)
    return origin
