"""Pure-ASGI middleware: the API version header (and over TLS, HSTS) on every answer and one
log line per request."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard.api.access_log import AccessLog, printable
from dockyard.api.errors import UNEXPECTED_BODY
from dockyard.api.services import SERVICES_KEY, Services
from dockyard.core.errors import RegistryError

log = logging.getLogger("dockyard.access")

API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
# Served over HTTPS: browsers and clients that honour it never fall back to plain HTTP, where
# a password or token could be read on the way.
HSTS = (b"strict-transport-security", b"max-age=31536000")


class RegistryHeaders:
    def __init__(self, app: ASGIApp, services: Services, *, log_requests: bool = True,
                 tls: bool = False) -> None:
        self.app = app
        self.services = services
        self.extra = (API_VERSION, HSTS) if tls else (API_VERSION,)
        self.access = AccessLog() if log_requests else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[SERVICES_KEY] = self.services
        started = time.perf_counter()
        status = 0
        sent = 0

        async def wrapped_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *self.extra]
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
                log.warning("%s %s cut short: %s", scope["method"],
                            printable(scope.get("path", "")), cause)
                return
            log.exception("unexpected error in %s %s", scope["method"],
                          printable(scope.get("path", "")))
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
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": UNEXPECTED_BODY})
        finally:
            if self.access is not None:
                client = scope.get("client") or ("-", 0)
                path = scope.get("path", "")
                if scope.get("query_string"):
                    path += "?" + scope["query_string"].decode("latin-1")
                self.access.write(client[0], scope["method"], path, status, sent,
                                  (time.perf_counter() - started) * 1000)
