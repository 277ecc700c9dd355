"""The signed-in viewer's own account: personal access tokens (create, list, revoke) and the
password. The same service calls as `/api/v1/tokens` and `/api/v1/users/{name}`."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.service.accounts import TOKEN_PREFIX, TOKEN_SCOPES, AccessToken
from dockyard.web import sessions
from dockyard.web.pages.common import for_signed_in
from dockyard.web.rendering import redirect, render, set_session_cookie
from dockyard.web.site import auth_of, registry_of, site_of
from dockyard.web.viewer import Viewer

MAX_EXPIRY_DAYS = 36500  # a century, as the API allows


def registry_host(request: Request) -> str:
    """What `docker login` takes: the registry's host[:port], from its public URL."""
    return urlsplit(registry_of(request).settings.public_base()).netloc


async def _tokens_page(
    request: Request,
    viewer: Viewer,
    status: int = 200,
    *,
    created: tuple[AccessToken, str] | None = None,
    message: str | None = None,
) -> Response:
    tokens = await registry_of(request).accounts.tokens_of(viewer.name)
    tokens.sort(key=lambda token: -token.created_at)
    return render(
        request,
        viewer,
        "tokens.html",
        status,
        tokens=tokens,
        created=created,
        message=message,
        scopes=TOKEN_SCOPES,
        host=registry_host(request),
    )


@for_signed_in
async def tokens(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    return await _tokens_page(request, viewer)


@for_signed_in
async def create_token(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    name = form.get("name", "").strip()
    scope = form.get("scope", "read")
    days = form.get("expires_in_days", "").strip()
    expires_in = None
    if days:
        if not days.isascii() or not days.isdigit() or not 0 < int(days) <= MAX_EXPIRY_DAYS:
            error = ErrorCode.BAD_REQUEST
            return await _tokens_page(
                request,
                viewer,
                error.status,
                message=f"Expiry is a number of days from 1 to {MAX_EXPIRY_DAYS}, or empty.",
            )
        expires_in = int(days) * 86400.0
    try:
        created = await registry_of(request).accounts.create_token(
            viewer.name, name, scope, expires_in
        )
    except KeyError:
        return await _tokens_page(
            request, viewer, ErrorCode.CONFLICT.status, message="A token with that name exists."
        )
    except ValueError as exc:
        return await _tokens_page(request, viewer, ErrorCode.BAD_REQUEST.status, message=str(exc))
    return await _tokens_page(request, viewer, 201, created=created)


@for_signed_in
async def revoke_token(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    token_id = form.get("token", "")
    # By id among the viewer's own tokens only: another account's id is no token of theirs.
    owned = {t.id for t in await registry_of(request).accounts.tokens_of(viewer.name)}
    if token_id not in owned or not await registry_of(request).accounts.revoke_token(
        viewer.name, token_id
    ):
        raise RegistryError(ErrorCode.NOT_FOUND, "You have no such active token.")
    return redirect(request, viewer, "/account/tokens")


@for_signed_in
async def password(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    if request.method == "GET":
        done = request.query_params.get("changed") == "1"
        return render(request, viewer, "password.html", changed=done, message=None)
    current = form.get("current_password", "")
    new = form.get("new_password", "")
    registry = registry_of(request)
    auth = auth_of(request)
    assert auth is not None

    def refused(code: ErrorCode, message: str) -> Response:
        return render(request, viewer, "password.html", code.status, changed=False, message=message)

    if new != form.get("confirm_password", ""):
        return refused(ErrorCode.BAD_REQUEST, "The new password and its confirmation differ.")
    # Checked (and throttled) as a sign-in is: whoever holds a session must know the password.
    checked = None
    if current and not current.startswith(TOKEN_PREFIX):
        checked = await auth.gate.login(viewer.name, current, viewer.address, fresh=True)
    if checked is None:
        return refused(ErrorCode.UNAUTHORIZED, "The current password is not the account's.")
    try:
        changed = await registry.accounts.set_password(viewer.name, new)
    except RegistryError as error:
        return refused(error.code, error.message)
    principal = await registry.accounts.principal(viewer.name) if changed else None
    if principal is None or principal.stamp is None:
        raise RegistryError(ErrorCode.NOT_FOUND, "no such user")
    # Every session began before the change is over; this one goes on under a new id.
    response = redirect(request, None, "/account/password?changed=1")
    key = await site_of(request).key(registry)
    session = sessions.start(viewer.name, principal.stamp[0])
    set_session_cookie(response, request, sessions.encode(session, key))
    return response
