"""The single place where failures become HTTP responses in the spec's JSON shape."""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.core.errors import ErrorCode, RegistryError

log = logging.getLogger("dockyard.api")


class ClientDisconnected(Exception):
    """The client went away mid-request; there is nobody left to answer."""


def render(error: RegistryError, method: str = "GET", status: int | None = None) -> Response:
    """`status` only for Starlette's own HTTP errors, whose status the table cannot know."""
    headers = dict(error.headers)
    status = status or error.status
    if method == "HEAD":
        # HEAD answers carry no body; the status and headers still say what went wrong.
        return Response(status_code=status, headers=headers)
    return JSONResponse(error.to_json(), status_code=status, headers=headers)


async def registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return render(exc, request.method)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        error = RegistryError(ErrorCode.UNSUPPORTED, f"{request.method} is not supported here")
    elif exc.status_code == 404:
        error = RegistryError(ErrorCode.ENDPOINT_UNKNOWN)
    else:
        # Whatever else Starlette raises keeps its own status, with the spec's body.
        error = RegistryError(ErrorCode.UNSUPPORTED, str(exc.detail))
        return render(error, request.method, exc.status_code)
    return render(error, request.method)


async def client_disconnected(request: Request, exc: Exception) -> Response:
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return render(
        RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, "client disconnected"), request.method
    )


async def unexpected_error(request: Request, exc: Exception) -> Response:
    """A bug, not bad input: the client gets the spec's shape instead of Starlette's plain
    text, and the traceback goes to the log (the exception is raised again after this)."""
    return render(RegistryError(ErrorCode.UNKNOWN), request.method)


EXCEPTION_HANDLERS = {
    RegistryError: registry_error,
    HTTPException: http_error,
    ClientDisconnected: client_disconnected,
    Exception: unexpected_error,
}

# What a client sees when a bug escapes every handler: the spec's shape, never a traceback.
UNEXPECTED_BODY = b'{"errors":[{"code":"UNKNOWN","message":"internal error"}]}'
