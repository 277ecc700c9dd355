"""The request behind a change, noted for the event the metadata store writes with it
(`core/event_origin.py`): only by the handlers that change something, and by manifest GETs when
pull events are on (`note_pull`: then only for the first pull a window counts under its key),
so that other requests pay nothing for it."""

from __future__ import annotations

import uuid

from starlette.requests import Request

from dockyard.auth.requests import Caller
from dockyard.core.event_origin import EventOrigin, set_origin
from dockyard.service.events import EventService
from dockyard.service.pull_tally import PullKey


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


def note_pull(
    request: Request,
    caller: Caller | None,
    events: EventService,
    repository: str,
    manifest: tuple[str, str, int],
    reference: str,
) -> None:
    """Count a manifest GET for pull events: keyed by what was pulled and by whom (account,
    address without its port, Host, User-Agent); the request is described for the event only
    when it is the window's first pull under its key. `manifest`: digest, media type, size."""
    scope = request.scope
    client = scope.get("client")
    host, agent = _host_and_agent(scope["headers"])
    key: PullKey = (
        repository,
        *manifest,
        None if ":" in reference else reference,
        caller.principal.name if caller is not None else "",
        client[0] if client else "",
        host,
        agent,
    )
    events.pulled(key, lambda: note_origin(request, caller))


def _host_and_agent(headers: list[tuple[bytes, bytes]]) -> tuple[str, str]:
    """The first Host and User-Agent, as `Request.headers.get` reads them (latin-1), from one
    pass over the raw list: every manifest GET pays this when pull events are on, and a
    header the client did not send (wrk, curl without `-A`) cost `Headers.get` a KeyError
    raised and caught."""
    host: bytes | None = None
    agent: bytes | None = None
    for name, value in headers:
        if name == b"host":
            if host is None:
                host = value
        elif name == b"user-agent" and agent is None:
            agent = value
    return (
        host[:255].decode("latin-1") if host else "",
        agent[:512].decode("latin-1") if agent else "",
    )
