"""Metrics of every HTTP request (pure ASGI middleware) and the `/metrics` page.

Requests are counted by route template, as Starlette's router matched it (it leaves the
route in the scope, so nothing is matched twice): a raw path would make one series per
repository. Label values are bounded by the route table, the methods below and the HTTP
statuses.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.api.routes.accounts import administrator
from dockyard.api.routes.common import registry_of
from dockyard.service.metrics import CONTENT_TYPE, Metrics, exposition, process_metrics

# Any other method token a client sends is counted as "other": methods are client input.
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "other"  # no route matched (a 404 of the router)
_BODY_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})
_UPLOAD_METHODS = frozenset({"POST", "PATCH", "PUT"})
_UPLOADS = "/blobs/uploads"


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


class Metered:
    """Counts requests, their duration and bytes, uploads in flight and 429 refusals."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        sent = 0
        received = 0
        method = scope["method"]
        upload = False
        if method in _BODY_METHODS:
            upload = method in _UPLOAD_METHODS and _UPLOADS in scope["path"]
            if _has_body(scope):
                outer_receive = receive

                async def receive() -> Message:
                    nonlocal received
                    message = await outer_receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                    return message

        async def counted_send(message: Message) -> None:
            nonlocal status, sent
            if "body" in message:
                sent += len(message["body"])
            elif message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        if upload:
            self.metrics.uploads_in_flight.inc()
        try:
            await self.app(scope, receive, counted_send)
        finally:
            if upload:
                self.metrics.uploads_in_flight.dec()
            route = scope.get("route")
            self.metrics.request_done(
                route.path if route is not None else UNMATCHED,
                method if method in METHODS else "other",
                status or 500,  # nothing answered: the server's failure
                time.perf_counter() - started,
                received,
                sent,
            )


async def metrics_page(request: Request) -> Response:
    """The whole server's series: for administrators (anonymous 401 with the challenge, other
    accounts 403); without accounts, to anyone, as everything else is."""
    settings = registry_of(request).settings
    if settings.auth_enabled:
        await administrator(request, changing=False)
    process_metrics().flush()  # this worker's latest; then every worker's files, off the loop
    body = await asyncio.to_thread(exposition, settings.port)
    return Response(body, media_type=CONTENT_TYPE, headers={"cache-control": "no-store"})
