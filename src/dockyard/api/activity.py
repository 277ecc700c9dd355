"""Pure-ASGI middleware counting every request: this worker's requests in progress
(`service.activity`), so the garbage collector rests between its batches only while the worker
has requests to serve; and with metrics on, each request's route, status, duration and bytes,
uploads in flight and 429 refusals (`service.metrics`).

One layer for both, outermost, so every request counts whoever answers it. Requests are counted
by route template, as Starlette's router (or `api.hot_reads`) matched it and left it in the
scope: a raw path would make one series per repository. Label values are bounded by the route
table, the methods below and the HTTP statuses.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.service.activity import Activity

if TYPE_CHECKING:  # the metrics library is loaded only with metrics on
    from dockyard.service.metrics import Metrics

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


class CountsRequests:
    def __init__(self, app: ASGIApp, activity: Activity, metrics: Metrics | None = None) -> None:
        self.app = app
        self.activity = activity
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        activity = self.activity
        activity.started += 1
        activity.in_progress += 1
        try:
            if self.metrics is None:
                await self.app(scope, receive, send)
            else:
                await self._metered(scope, receive, send, self.metrics)
        finally:
            activity.in_progress -= 1

    async def _metered(self, scope: Scope, receive: Receive, send: Send, metrics: Metrics) -> None:
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
            metrics.uploads_in_flight.inc()
        try:
            await self.app(scope, receive, counted_send)
        finally:
            if upload:
                metrics.uploads_in_flight.dec()
            route = scope.get("route")
            metrics.request_done(
                route.path if route is not None else UNMATCHED,
                method if method in METHODS else "other",
                status or 500,  # nothing answered: the server's failure
                time.perf_counter() - started,
                received,
                sent,
            )
