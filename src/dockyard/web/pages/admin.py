"""Administrators' pages: users (add, disable and enable, set a password) and storage use per
namespace, through the same account and repository services as `/api/v1/users` and
`/api/v1/usage`."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.service.accounts import ACCOUNT_NAME, USER
from dockyard.web.pages.common import for_administrators
from dockyard.web.rendering import redirect, render
from dockyard.web.site import registry_of
from dockyard.web.viewer import Viewer

_DONE = {
    "added": "Added {}.",
    "disabled": "Disabled {}.",
    "enabled": "Enabled {}.",
    "password": "New password set for {}.",
}


def _done(what: str, name: str) -> str:
    return f"/admin/users?done={what}&user={quote(name)}"


async def _users_page(
    request: Request, viewer: Viewer, status: int = 200, message: str | None = None
) -> Response:
    users = await registry_of(request).accounts.users()
    done = ""
    if request.method == "GET":
        # Said from a fixed list: a link someone else wrote must not put words in the page.
        what, name = request.query_params.get("done", ""), request.query_params.get("user", "")
        if what in _DONE and ACCOUNT_NAME.fullmatch(name) and len(name) <= 64:
            done = _DONE[what].format(name)
    return render(
        request, viewer, "admin_users.html", status, users=users, message=message, done=done
    )


@for_administrators
async def users(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    return await _users_page(request, viewer)


@for_administrators
async def add_user(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    name = form.get("name", "").strip()
    password = form.get("password", "")
    if not password:
        return await _users_page(
            request, viewer, ErrorCode.BAD_REQUEST.status, "A password is required."
        )
    try:
        await registry_of(request).accounts.create_user(
            name, password, admin=form.get("admin") == "on"
        )
    except KeyError:
        return await _users_page(request, viewer, ErrorCode.CONFLICT.status, "That name is taken.")
    except RegistryError as error:
        return await _users_page(request, viewer, error.status, error.message)
    return redirect(request, viewer, _done("added", name))


@for_administrators
async def disable_user(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    return await _switch(request, viewer, form, disable=True)


@for_administrators
async def enable_user(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    return await _switch(request, viewer, form, disable=False)


async def _switch(
    request: Request, viewer: Viewer, form: dict[str, str], *, disable: bool
) -> Response:
    """GET: the confirmation saying what disabling (or enabling) means; POST: done, through
    the same service as `PUT /api/v1/users/NAME/disabled`."""
    name = (
        form.get("name", "") if request.method == "POST" else request.query_params.get("name", "")
    )
    if disable and name == viewer.name:
        return await _users_page(
            request,
            viewer,
            ErrorCode.BAD_REQUEST.status,
            "You cannot disable your own account.",
        )
    accounts = registry_of(request).accounts
    if not ACCOUNT_NAME.fullmatch(name) or await accounts.kind_of(name) != USER:
        raise RegistryError(ErrorCode.NOT_FOUND, "no such user")
    if request.method == "GET":
        return render(request, viewer, "admin_user_state.html", name=name, disable=disable)
    try:
        changed = await (accounts.disable_user(name) if disable else accounts.enable_user(name))
    except RegistryError as error:  # the last enabled administrator
        return await _users_page(request, viewer, error.status, error.message)
    if not changed:  # removed meanwhile
        raise RegistryError(ErrorCode.NOT_FOUND, "no such user")
    return redirect(request, viewer, _done("disabled" if disable else "enabled", name))


@for_administrators
async def set_password(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    name = form.get("name", "")
    if name == viewer.name:
        # As the API has it: one's own password is changed knowing the current one.
        return redirect(request, viewer, "/account/password")
    try:
        changed = await registry_of(request).accounts.set_password(name, form.get("password", ""))
    except RegistryError as error:
        return await _users_page(request, viewer, error.status, error.message)
    if not changed:
        raise RegistryError(ErrorCode.NOT_FOUND, "no such user")
    return redirect(request, viewer, _done("password", name))


@for_administrators
async def usage(request: Request, viewer: Viewer, form: dict[str, str]) -> Response:
    report = await registry_of(request).repositories.usage(None)
    namespaces = sorted(report.namespaces, key=lambda n: (-n.bytes, n.name))
    return render(request, viewer, "admin_usage.html", report=report, namespaces=namespaces)
