"""Pure-ASGI middleware: the API version header (and over TLS, HSTS) on every answer, the
request id (`X-Request-ID`, on every log line written while serving) and one log line per
request."""

from __future__ import annotations

import ipaddress
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.api.access_log import AccessLog, printable
from dockyard.api.errors import UNEXPECTED_BODY
from dockyard.api.proxying import NAMESPACE_KEY
from dockyard.api.request_id import request_id_of
from dockyard.api.routes.common import CALLER_KEY
from dockyard.api.services import SERVICES_KEY, Services
from dockyard.core.errors import RegistryError
from dockyard.core.logs import REQUEST_ID
from dockyard.service.audit import ACTOR, NOBODY

log = logging.getLogger("dockyard.access")

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
# Served over HTTPS: browsers and clients that honour it never fall back to plain HTTP, where
# a password or token could be read on the way.
HSTS = (b"strict-transport-security", b"max-age=31536000")
CLOSE = (b"connection", b"close")
_BODY_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})


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
        log_requests: bool = True,
        tls: bool = False,
        trusted_proxies: list[str] | None = None,
    ) -> None:
        self.app = app
        self.services = services
        self.extra = (API_VERSION, HSTS) if tls else (API_VERSION,)
        self.access = AccessLog() if log_requests else None
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies or ()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[SERVICES_KEY] = self.services
        peer = scope.get("client") or ("-", 0)
        request_id = request_id_of(peer[0], scope["headers"], self.trusted)
        context = REQUEST_ID.set(request_id)
        actor = ACTOR.set(NOBODY)  # until the request's caller is known (api.routes.common)
        started = time.perf_counter()
        status = 0
        sent = 0
        # An answer given before the body was read (refused, too large, unknown upload) ends
        # the connection, and says so: the server does not read the rest, so a client that
        # reused the connection would find it closed under its next request.
        unread = (
            scope["method"] in _BODY_METHODS
            and scope.get("http_version") in ("1.1", "1.0")
            and _has_body(scope)
        )
        if unread:
            outer_receive = receive

            async def receive() -> Message:
                nonlocal unread
                message = await outer_receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
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

        try:
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
        finally:
            if self.access is not None:
                path = scope.get("path", "")
                if scope.get("query_string"):
                    path += "?" + scope["query_string"].decode("latin-1")
                caller = scope.get(CALLER_KEY)
                principal = caller.principal if caller is not None else None
                self.access.write(
                    peer[0],
                    scope["method"],
                    path,
                    status,
                    sent,
                    (time.perf_counter() - started) * 1000,
                    principal.name if principal is not None else None,
                    principal.token_name if principal is not None else None,
                    request_id,
                )
            REQUEST_ID.reset(context)
            ACTOR.reset(actor)
