"""Pure-ASGI middleware, outermost: the API version header (and over TLS, HSTS) on every
answer, the request id (`X-Request-ID`, on every log line written while serving), one log line
per request, the cap on a client's requests in progress (`api.client_limit`), and the counting
of every request: this worker's requests in progress
(`service.activity`), so the garbage collector rests between its batches only while the worker
has requests to serve; and with metrics on, each request's route, status, duration and bytes,
uploads in flight and 429 refusals (`service.metrics`).

One layer for all of it, so every request counts and is logged whoever answers it, and an
answer passes through one wrapper of `send`, not one per concern (the pulls' hot reads run
through it, `api.hot_reads`); an answer `api.hot_reads` remembered is sent by this layer
itself (`_replay`, the same bookkeeping without the wrapper). Requests are counted by route
template, as Starlette's router (or `api.hot_reads`) matched it and left it in the scope: a raw
path would make one series per repository. Label values are bounded by the route table, the
methods below and the HTTP statuses.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.api.access_log import AccessLog, printable
from dockyard.api.client_limit import PerClientLimit
from dockyard.api.errors import UNEXPECTED_BODY, render
from dockyard.api.hot_reads import Answer, HotReads
from dockyard.api.proxying import NAMESPACE_KEY
from dockyard.api.request_id import request_id_of
from dockyard.api.routes.common import CALLER_KEY
from dockyard.api.services import SERVICES_KEY, Services
from dockyard.core.errors import RegistryError
from dockyard.core.logs import REQUEST_ID
from dockyard.service.activity import Activity
from dockyard.service.audit import ACTOR, NOBODY

if TYPE_CHECKING:  # the metrics library is loaded only with metrics on
    from dockyard.service.metrics import Metrics

log = logging.getLogger("dockyard.access")

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
# Served over HTTPS: browsers and clients that honour it never fall back to plain HTTP, where
# a password or token could be read on the way.
HSTS = (b"strict-transport-security", b"max-age=31536000")
CLOSE = (b"connection", b"close")
_BODY_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})
# Any other method token a client sends is counted as "other": methods are client input.
METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "other"  # no route matched (a 404 of the router)
_UPLOAD_METHODS = frozenset({"POST", "PATCH", "PUT"})
_UPLOADS = "/blobs/uploads"


def _has_body(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"", b"0")
        if name == b"transfer-encoding":
            return True
    return False


class RegistryHeaders:
    def __init__(
        self,
        app: ASGIApp,
        services: Services,
        *,
        activity: Activity | None = None,
        metrics: Metrics | None = None,
        max_requests_per_client: int = 0,
        log_requests: bool = True,
        tls: bool = False,
        trusted_proxies: list[str] | None = None,
    ) -> None:
        self.app = app
        # Remembered answers are given here, without the layers below (`api.hot_reads`).
        self.hot = app if isinstance(app, HotReads) else None
        self.services = services
        self.activity = activity if activity is not None else Activity()
        self.metrics = metrics
        self.extra = (API_VERSION, HSTS) if tls else (API_VERSION,)
        self.access = AccessLog() if log_requests else None
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies or ()]
        self.limit = (
            PerClientLimit(max_requests_per_client, trusted_proxies or [])
            if max_requests_per_client
            else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            try:
                await self.app(scope, receive, send)
            finally:  # the lifespan's end: the worker stops with no access line left unwritten
                if self.access is not None:
                    self.access.flush()
            return
        activity = self.activity
        activity.started += 1
        activity.in_progress += 1
        try:
            hot = self.hot
            if hot is not None and hot.answers:
                answer = hot.recall(scope, self.services.registry)
                if answer is not None and await self._replay(answer, scope, receive, send):
                    return
            await self._serve(scope, receive, send)
        finally:
            activity.in_progress -= 1

    async def _replay(self, answer: Answer, scope: Scope, receive: Receive, send: Send) -> bool:
        """`_serve` of a remembered answer (`api.hot_reads`): the same counting, headers, log
        line, metrics and cap on the client, for a 200 to a GET or HEAD with no body. False,
        having done nothing, when the client is at its cap: `_serve` refuses it then."""
        limit = self.limit
        admitted = None
        if limit is not None:
            admitted = limit.admit(scope)
            if admitted is None:
                return False
        scope[SERVICES_KEY] = services = self.services
        peer = scope.get("client") or ("-", 0)
        request_id = request_id_of(peer[0], scope["headers"], self.trusted)
        context = REQUEST_ID.set(request_id)
        actor = ACTOR.set(NOBODY)
        started = time.perf_counter()
        status = 0
        sent = 0
        try:
            self.hot.pulled(answer, services.registry, scope, receive)  # type: ignore[union-attr]
            status = 200
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        *answer.headers,
                        *self.extra,
                        (b"x-request-id", request_id.encode()),
                    ],
                }
            )
            sent = len(answer.body)
            await send({"type": "http.response.body", "body": answer.body})
        except Exception:
            log.exception(
                "unexpected error in %s %s", scope["method"], printable(scope.get("path", ""))
            )
            if status == 0:  # nothing sent yet: answer in the spec's shape
                status = 500
                sent = await self._unexpected(send, request_id, False)
        finally:
            if admitted is not None:
                limit.leave(admitted)  # type: ignore[union-attr]
            self._done(scope, peer[0], status, started, 0, sent, request_id)
            REQUEST_ID.reset(context)
            ACTOR.reset(actor)
        return True

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SERVICES_KEY] = self.services
        metrics = self.metrics
        method = scope["method"]
        peer = scope.get("client") or ("-", 0)
        request_id = request_id_of(peer[0], scope["headers"], self.trusted)
        context = REQUEST_ID.set(request_id)
        actor = ACTOR.set(NOBODY)  # until the request's caller is known (api.routes.common)
        started = time.perf_counter()
        status = 0
        sent = 0
        received = 0
        # An answer given before the body was read (refused, too large, unknown upload) ends
        # the connection, and says so: the server does not read the rest, so a client that
        # reused the connection would find it closed under its next request.
        unread = False
        upload = False
        if method in _BODY_METHODS:
            upload = metrics is not None and method in _UPLOAD_METHODS and _UPLOADS in scope["path"]
            if _has_body(scope):
                unread = scope.get("http_version") in ("1.1", "1.0")
                outer_receive = receive

                async def receive() -> Message:
                    nonlocal unread, received
                    message = await outer_receive()
                    if message["type"] == "http.request":
                        received += len(message.get("body", b""))
                        if not message.get("more_body", False):
                            unread = False
                    else:
                        unread = False
                    return message

        async def wrapped_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = (*self.extra, (b"x-request-id", request_id.encode()))
                if unread:
                    extra = (*extra, CLOSE)
                namespace = scope.get(NAMESPACE_KEY)
                if namespace is not None:  # the request was scoped by `?ns=`: say so
                    extra = (*extra, (b"oci-namespace", namespace.encode()))
                message["headers"] = [*message.get("headers", ()), *extra]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        if upload:
            metrics.uploads_in_flight.inc()  # type: ignore[union-attr]
        limit = self.limit
        admitted = None
        try:
            if limit is not None:
                admitted = limit.admit(scope)
                if admitted is None:
                    await render(limit.refusal(), method)(scope, receive, wrapped_send)
                    return
            await self.app(scope, receive, wrapped_send)
        except Exception as exc:
            # Once a response started, Starlette hands its error on wrapped in a RuntimeError.
            cause = exc if isinstance(exc, RegistryError) else exc.__cause__
            if status and isinstance(cause, RegistryError):
                # A stream that failed after its headers went out (an upstream download that
                # broke): the client sees the body cut short, which is the answer.
                log.warning(
                    "%s %s cut short: %s", scope["method"], printable(scope.get("path", "")), cause
                )
                return
            log.exception(
                "unexpected error in %s %s", scope["method"], printable(scope.get("path", ""))
            )
            if status == 0:  # nothing sent yet: answer in the spec's shape
                status = 500
                sent += await self._unexpected(send, request_id, unread)
        finally:
            if admitted is not None:
                limit.leave(admitted)  # type: ignore[union-attr]
            if upload:
                metrics.uploads_in_flight.dec()  # type: ignore[union-attr]
            self._done(scope, peer[0], status, started, received, sent, request_id)
            REQUEST_ID.reset(context)
            ACTOR.reset(actor)

    async def _unexpected(self, send: Send, request_id: str, unread: bool) -> int:
        """A 500 in the spec's shape, for a failure before anything was sent; its size."""
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(UNEXPECTED_BODY)).encode()),
                    *self.extra,
                    (b"x-request-id", request_id.encode()),
                    *((CLOSE,) if unread else ()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": UNEXPECTED_BODY})
        return len(UNEXPECTED_BODY)

    def _done(
        self,
        scope: Scope,
        client: str,
        status: int,
        started: float,
        received: int,
        sent: int,
        request_id: str,
    ) -> None:
        """The request's access log line and metrics, once it is answered (or failed)."""
        method = scope["method"]
        if self.access is not None:
            path = scope.get("path", "")
            if scope.get("query_string"):
                path += "?" + scope["query_string"].decode("latin-1")
            caller = scope.get(CALLER_KEY)
            principal = caller.principal if caller is not None else None
            self.access.write(
                client,
                method,
                path,
                status,
                sent,
                (time.perf_counter() - started) * 1000,
                principal.name if principal is not None else None,
                principal.token_name if principal is not None else None,
                request_id,
            )
        metrics = self.metrics
        if metrics is not None:
            route = scope.get("route")
            metrics.request_done(
                route.path if route is not None else UNMATCHED,
                method if method in METHODS else "other",
                status or 500,  # nothing answered: the server's failure
                time.perf_counter() - started,
                received,
                sent,
            )
