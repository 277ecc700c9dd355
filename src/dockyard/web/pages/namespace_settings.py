"""What a namespace's owners change in the pages: an organisation's members and their roles,
and the visibility of repositories pushed to the namespace from now on.

Decided as the account API decides it (`auth.policy`): the member list is shown to the
organisation's members and administrators (`may_see_members`, as `GET
/api/v1/orgs/ORG/members`), and changes take `may_administer` (as `PUT` and `DELETE
/api/v1/orgs/ORG/members/USER`); the rules about roles, the last owner included, are the
account service's. A viewer who may not see a list gets the one "not found" page; a change
from anyone else is refused (403) before the form's fields are looked at.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from dockyard.auth.policy import may_administer, may_see_members
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.service.accounts import ACCOUNT_NAME, ROLES, Principal
from dockyard.web.pages.common import not_found, signed_in
from dockyard.web.rendering import redirect, render
from dockyard.web.site import auth_of, registry_of
from dockyard.web.viewer import Viewer

VISIBILITIES = ("public", "private")
ORG = "org"
# After a change, said from a fixed list: a link someone else wrote must not put words in
# the page.
_DONE = {
    "added": "{} is now a member.",
    "role": "{} has a new role.",
    "removed": "{} is no longer a member.",
}


@dataclass(frozen=True, slots=True)
class OwnerTools:
    """What the namespace page offers its viewer beyond the repositories."""

    kind: str | None
    members_link: bool  # an organisation whose members the viewer may see
    administers: bool
    default_visibility: str | None  # shown to those who administer the namespace


async def owner_tools(
    request: Request, viewer: Viewer, namespace: str, kind: str | None
) -> OwnerTools:
    """`kind`: the namespace's account's, as `AccountService.kind_of` says."""
    registry = registry_of(request)
    principal = viewer.principal if viewer.signed_in else None
    if auth_of(request) is None or principal is None or kind is None:
        return OwnerTools(kind, False, False, None)
    administers = may_administer(principal, namespace)
    default = await registry.accounts.namespace_default(namespace) if administers else None
    return OwnerTools(
        kind, kind == ORG and may_see_members(principal, namespace), administers, default
    )


def _valid_namespace(name: str) -> bool:
    return len(name) <= 64 and ACCOUNT_NAME.fullmatch(name) is not None


async def _member_viewer(
    request: Request,
) -> tuple[Viewer, Principal, str, dict[str, str], Response | None]:
    """The signed-in viewer, their principal, the organisation of the path and the posted
    form; a POST from anyone who may not change the organisation is refused here."""
    viewer, form, elsewhere = await signed_in(request)
    org = request.path_params["namespace"]
    principal = viewer.principal
    if elsewhere is not None or principal is None:
        return viewer, Principal(), org, form, elsewhere
    if request.method == "POST":
        if not may_administer(principal, org):
            raise RegistryError(
                ErrorCode.DENIED, "Only an owner of the organisation may change its members."
            )
    elif not may_see_members(principal, org):
        raise not_found()
    if not _valid_namespace(org) or await registry_of(request).accounts.kind_of(org) != ORG:
        raise not_found()
    return viewer, principal, org, form, None


def _members_path(org: str, done: str = "", user: str = "") -> str:
    path = f"/u/{org}/-/members"
    return f"{path}?done={done}&user={quote(user)}" if done else path


async def _members_page(
    request: Request,
    viewer: Viewer,
    principal: Principal,
    org: str,
    status: int = 200,
    message: str | None = None,
) -> Response:
    members = await registry_of(request).accounts.members(org)
    done = ""
    if request.method == "GET":
        what, name = request.query_params.get("done", ""), request.query_params.get("user", "")
        if what in _DONE and _valid_namespace(name):
            done = _DONE[what].format(name)
    return render(
        request,
        viewer,
        "members.html",
        status,
        org=org,
        members=members,
        owners=sum(1 for _, role in members if role == "owner"),
        roles=ROLES,
        administers=may_administer(principal, org),
        done=done,
        message=message,
    )


async def members(request: Request) -> Response:
    viewer, principal, org, _, elsewhere = await _member_viewer(request)
    if elsewhere is not None:
        return elsewhere
    return await _members_page(request, viewer, principal, org)


async def set_member(request: Request) -> Response:
    """Add a member with a role, or change a member's role."""
    viewer, principal, org, form, elsewhere = await _member_viewer(request)
    if elsewhere is not None:
        return elsewhere
    user, role = form.get("user", "").strip(), form.get("role", "")
    accounts = registry_of(request).accounts
    known = dict(await accounts.members(org))
    try:
        await accounts.add_member(org, user, role)
    except ValueError:
        return await _members_page(
            request,
            viewer,
            principal,
            org,
            ErrorCode.BAD_REQUEST.status,
            "Choose a role: reader, maintainer or owner.",
        )
    except KeyError:
        return await _members_page(
            request,
            viewer,
            principal,
            org,
            ErrorCode.NOT_FOUND.status,
            "There is no user by that name.",
        )
    except RegistryError as error:
        return await _members_page(request, viewer, principal, org, error.status, error.message)
    return redirect(request, viewer, _members_path(org, "role" if user in known else "added", user))


async def remove_member(request: Request) -> Response:
    """GET: the confirmation, saying what the member loses; POST: the removal."""
    viewer, principal, org, form, elsewhere = await _member_viewer(request)
    if elsewhere is not None:
        return elsewhere
    accounts = registry_of(request).accounts
    if request.method == "GET":
        user = request.query_params.get("user", "")
        role = dict(await accounts.members(org)).get(user)
        if role is None or not may_administer(principal, org):
            raise not_found()
        return render(request, viewer, "member_remove.html", org=org, user=user, role=role)
    user = form.get("user", "")
    try:
        removed = await accounts.remove_member(org, user)
    except RegistryError as error:
        return await _members_page(request, viewer, principal, org, error.status, error.message)
    if not removed:
        return await _members_page(
            request,
            viewer,
            principal,
            org,
            ErrorCode.NOT_FOUND.status,
            "That user is not a member.",
        )
    if user == viewer.name and not viewer.is_admin:
        return redirect(request, viewer, "/")  # no longer theirs to see
    return redirect(request, viewer, _members_path(org, "removed", user))


async def default_visibility(request: Request) -> Response:
    """GET `?to=public|private`: the confirmation, saying what it means; POST: the change."""
    viewer, form, elsewhere = await signed_in(request)
    if elsewhere is not None:
        return elsewhere
    namespace = request.path_params["namespace"]
    principal = viewer.principal
    if principal is None or not may_administer(principal, namespace):
        if request.method == "POST":
            raise RegistryError(ErrorCode.DENIED, "Only the namespace's owners may change this.")
        raise not_found()
    accounts = registry_of(request).accounts
    if not _valid_namespace(namespace) or await accounts.kind_of(namespace) is None:
        raise not_found()
    wanted = (
        request.query_params.get("to", "")
        if request.method == "GET"
        else form.get("visibility", "")
    )
    if wanted not in VISIBILITIES:
        raise RegistryError(ErrorCode.BAD_REQUEST, "Visibility is public or private.")
    if request.method == "GET":
        return render(
            request,
            viewer,
            "namespace_visibility.html",
            namespace=namespace,
            wanted=wanted,
            current=await accounts.namespace_default(namespace),
        )
    await accounts.set_namespace_default(namespace, wanted)
    return redirect(request, viewer, f"/u/{namespace}")
