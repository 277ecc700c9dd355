"""`/token`: the Docker token endpoint (GET with Basic credentials, OAuth2 POST)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dockyard.api.routes.common import caller_address
from dockyard.auth.gate import decode_basic
from dockyard.core.errors import ErrorCode, RegistryError

MAX_FORM_BYTES = 64 * 1024


async def issue(request: Request) -> Response:
    auth = request.app.state.auth
    if auth is None:
        raise RegistryError(ErrorCode.UNSUPPORTED, "this registry runs without accounts",
                            status=404)
    address = caller_address(request)
    scopes = request.query_params.getlist("scope")
    if request.method == "POST":
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            raise RegistryError(ErrorCode.UNSUPPORTED, "form too large", status=413)
        form = await request.form()
        values = {k: str(v) for k, v in form.items()}
        scopes += [str(v) for v in form.getlist("scope")]
        body = await auth.issuer.with_form(values, scopes, address)
    else:
        params = request.query_params
        username = password = None
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            username, password = decode_basic(header[6:])
        body = await auth.issuer.with_basic(username, password, address, scopes,
                                            params.get("service"),
                                            params.get("offline_token") == "true")
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
