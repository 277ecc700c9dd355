"""Signing in and out with the registry's own accounts.

A password is checked by the access gate's `login`, the same code as Basic credentials at
`/token`, so the same throttle counts a page's failed attempts. Access tokens do not sign in:
they are for images, as at `/api/v1`.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.service.accounts import TOKEN_PREFIX
from dockyard.web import sessions
from dockyard.web.forms import posted_form
from dockyard.web.navigation import local_path
from dockyard.web.rendering import redirect, render, set_session_cookie
from dockyard.web.site import auth_of, registry_of, site_of
from dockyard.web.viewer import end_session, viewer_of

MAX_USERNAME = 64


async def sign_in(request: Request) -> Response:
    viewer = await viewer_of(request)
    auth = auth_of(request)
    if auth is None:
        raise RegistryError(ErrorCode.ENDPOINT_UNKNOWN, "this registry runs without accounts")
    if request.method == "GET":
        target = local_path(request.query_params.get("next"))
        if viewer.signed_in:
            return redirect(request, viewer, target)
        return render(request, viewer, "sign_in.html", next_path=target, username="")
    registry = registry_of(request)
    form = await posted_form(request, viewer, registry.settings.body_timeout_seconds)
    target = local_path(form.get("next"))
    username = form.get("username", "").strip()[:MAX_USERNAME]
    password = form.get("password", "")
    principal = None
    if username and password and not password.startswith(TOKEN_PREFIX):
        # Counted before it is checked, and over the limit raises TOOMANYREQUESTS.
        principal = await auth.gate.login(username, password, viewer.address, fresh=True)
    if principal is None or principal.stamp is None:
        failed = ErrorCode.UNAUTHORIZED
        return render(
            request,
            viewer,
            "sign_in.html",
            failed.status,
            next_path=target,
            username=username,
            message="Incorrect username or password."
            if not password.startswith(TOKEN_PREFIX)
            else "Access tokens are for images; sign in with the account's password.",
        )
    # A new session id on signing in: one planted before is worth nothing after.
    session = sessions.start(principal.name, principal.stamp[0])
    key = await site_of(request).key(registry)
    response = redirect(request, None, target)
    set_session_cookie(response, request, sessions.encode(session, key))
    return response


async def sign_out(request: Request) -> Response:
    viewer = await viewer_of(request)
    registry = registry_of(request)
    await posted_form(request, viewer, registry.settings.body_timeout_seconds)
    if viewer.signed_in:
        await end_session(request, viewer.session, time.time())
    key = await site_of(request).key(registry)
    response = redirect(request, None, "/")
    set_session_cookie(response, request, sessions.encode(sessions.start(), key))
    return response
