"""`/token`: the Docker token endpoint (GET with Basic credentials, OAuth2 POST)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.body import read_body
from dockyard.api.origin import same_origin
from dockyard.api.routes.common import auth_of, caller_address, registry_of
from dockyard.auth.requests import decode_basic
from dockyard.core.errors import ErrorCode, RegistryError

MAX_FORM_BYTES = 64 * 1024
_TOO_LARGE = RegistryError(ErrorCode.BODY_TOO_LARGE, "form too large")


async def issue(request: Request) -> Response:
    auth = auth_of(request)
    if auth is None:
        raise RegistryError(ErrorCode.ENDPOINT_UNKNOWN, "this registry runs without accounts")
    if not same_origin(request):
        # A form on any site may POST here without a preflight: its failed logins would be
        # counted against the visitor's own address. No registry client sends an Origin.
        raise RegistryError(ErrorCode.DENIED, "requests from other sites are refused")
    address = caller_address(request)
    scopes = request.query_params.getlist("scope")
    if request.method == "POST":
        # The OAuth2 form is application/x-www-form-urlencoded: parsed here, so the token
        # endpoint needs no multipart library (starlette's request.form() does).
        raw = await read_body(
            request, MAX_FORM_BYTES, registry_of(request).settings.body_timeout_seconds, _TOO_LARGE
        )
        pairs = parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)
        values = dict(pairs)
        scopes += [v for k, v in pairs if k == "scope"]
        body = await auth.issuer.with_form(values, scopes, address)
    else:
        params = request.query_params
        username = password = None
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            username, password = decode_basic(header[6:])
        body = await auth.issuer.with_basic(
            username,
            password,
            address,
            scopes,
            params.get("service"),
            params.get("offline_token") == "true",
        )
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
