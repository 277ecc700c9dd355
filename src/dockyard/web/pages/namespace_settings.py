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


@dataclass(frozen=True, slots=True)
class _Asked:
    """A members page or form: who asks, about which organisation, with which fields."""

    viewer: Viewer
    principal: Principal
    org: str
    form: dict[str, str]

    @property
    def administers(self) -> bool:
        return may_administer(self.principal, self.org)


async def _organisation(request: Request) -> _Asked | Response:
    """What a members page or form is about, or the answer to give instead: sign in first
    (a GET by a visitor), "not found" (a list the viewer may not see, or no such
    organisation), or a refusal (a POST from anyone who may not change the organisation,
    before its fields are looked at)."""
    viewer, form, elsewhere = await signed_in(request)
    if elsewhere is not None:
        return elsewhere
    assert viewer.principal is not None  # signed in
    asked = _Asked(viewer, viewer.principal, request.path_params["namespace"], form)
    if request.method == "POST":
        if not asked.administers:
            raise RegistryError(
                ErrorCode.DENIED, "Only an owner of the organisation may change its members."
            )
    elif not may_see_members(asked.principal, asked.org):
        raise not_found()
    accounts = registry_of(request).accounts
    if not _valid_namespace(asked.org) or await accounts.kind_of(asked.org) != ORG:
        raise not_found()
    return asked


def _members_path(org: str, done: str = "", user: str = "") -> str:
    path = f"/u/{org}/-/members"
    return f"{path}?done={done}&user={quote(user)}" if done else path


async def _members_page(
    request: Request, asked: _Asked, status: int = 200, message: str | None = None
) -> Response:
    members = await registry_of(request).accounts.members(asked.org)
    done = ""
    if request.method == "GET":
        what, name = request.query_params.get("done", ""), request.query_params.get("user", "")
        if what in _DONE and _valid_namespace(name):
            done = _DONE[what].format(name)
    return render(
        request,
        asked.viewer,
        "members.html",
        status,
        org=asked.org,
        members=members,
        owners=sum(1 for _, role in members if role == "owner"),
        roles=ROLES,
        administers=asked.administers,
        done=done,
        message=message,
    )


async def members(request: Request) -> Response:
    asked = await _organisation(request)
    if isinstance(asked, Response):
        return asked
    return await _members_page(request, asked)


async def set_member(request: Request) -> Response:
    """Add a member with a role, or change a member's role."""
    asked = await _organisation(request)
    if isinstance(asked, Response):
        return asked
    user, role = asked.form.get("user", "").strip(), asked.form.get("role", "")
    accounts = registry_of(request).accounts
    known = dict(await accounts.members(asked.org))
    try:
        await accounts.add_member(asked.org, user, role)
    except ValueError:
        return await _members_page(
            request,
            asked,
            ErrorCode.BAD_REQUEST.status,
            "Choose a role: reader, maintainer or owner.",
        )
    except KeyError:
        # Said without the name: whatever was typed is not written back into the page.
        return await _members_page(
            request, asked, ErrorCode.NOT_FOUND.status, "There is no user by that name."
        )
    except RegistryError as error:  # the last owner
        return await _members_page(request, asked, error.status, error.message)
    done = "role" if user in known else "added"
    return redirect(request, asked.viewer, _members_path(asked.org, done, user))


async def remove_member(request: Request) -> Response:
    """GET: the confirmation, saying what the member loses; POST: the removal."""
    asked = await _organisation(request)
    if isinstance(asked, Response):
        return asked
    accounts = registry_of(request).accounts
    if request.method == "GET":
        user = request.query_params.get("user", "")
        role = dict(await accounts.members(asked.org)).get(user)
        if role is None or not asked.administers:
            raise not_found()
        return render(
            request, asked.viewer, "member_remove.html", org=asked.org, user=user, role=role
        )
    user = asked.form.get("user", "")
    try:
        removed = await accounts.remove_member(asked.org, user)
    except RegistryError as error:  # the last owner
        return await _members_page(request, asked, error.status, error.message)
    if not removed:
        return await _members_page(
            request, asked, ErrorCode.NOT_FOUND.status, "That user is not a member."
        )
    if user == asked.viewer.name and not asked.viewer.is_admin:
        return redirect(request, asked.viewer, "/")  # the list is no longer theirs to see
    return redirect(request, asked.viewer, _members_path(asked.org, "removed", user))


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
    try:
        await accounts.set_namespace_default(namespace, wanted)
    except KeyError:  # the account went since the check above
        raise not_found() from None
    return redirect(request, viewer, f"/u/{namespace}")
