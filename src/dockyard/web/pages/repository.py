"""A repository's page, like Docker Hub's: README, description, visibility, pull commands and
the tags (a page at a time, filterable); and what its owners and maintainers change there:
the description and README, the visibility (after a confirmation saying what it means), and
deleting a tag or a manifest (after one saying what goes)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.service.image_views import MAX_FILTER
from dockyard.service.repository_info import MAX_README_BYTES
from dockyard.web.forms import posted_form
from dockyard.web.pages.repository_access import Shown, shown_repository
from dockyard.web.rendering import redirect, render
from dockyard.web.site import auth_of, registry_of

# A README of the largest size, URL-encoded: up to three bytes sent for each byte.
MAX_README_FORM_BYTES = 3 * MAX_README_BYTES + 64 * 1024
VISIBILITIES = ("public", "private")


def registry_host(request: Request) -> str:
    """The registry as `docker pull` names it: the configured public address's host[:port]."""
    return urlsplit(registry_of(request).settings.public_base()).netloc


def repository_path(name: str) -> str:
    return f"/r/{name}"


def _page_number(raw: str | None) -> int:
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 7 else 1


async def show(request: Request) -> Response:
    shown, _ = await shown_repository(request)
    registry = registry_of(request)
    params = request.query_params
    contains = params.get("q", "").strip()[:MAX_FILTER]
    tags = await registry.image_views.tags(shown.name, contains, _page_number(params.get("page")))
    info = await registry.repository_info.get(shown.name)
    return render(
        request,
        shown.viewer,
        "repository.html",
        repo=shown,
        info=info,
        tags=tags,
        filter=contains,
        visibility=await registry.image_views.visibility(shown.name),
        host=registry_host(request),
        accounts=auth_of(request) is not None,
        quote=quote,
    )


async def edit(request: Request) -> Response:
    shown, _ = await shown_repository(request)
    shown.require(shown.may_edit)
    service = registry_of(request).repository_info
    if request.method == "GET":
        info = await service.get(shown.name)
        return _edit_form(request, shown, info.description, info.readme)
    form = await posted_form(
        request,
        shown.viewer,
        registry_of(request).settings.body_timeout_seconds,
        MAX_README_FORM_BYTES,
    )
    # Browsers send a textarea's line breaks as CRLF; the README keeps the author's LF.
    description = form.get("description", "")
    readme = form.get("readme", "").replace("\r\n", "\n")
    try:
        await service.update(shown.name, description, readme)
    except RegistryError as error:
        if error.code not in (ErrorCode.BAD_REQUEST, ErrorCode.BODY_TOO_LARGE):
            raise
        return _edit_form(request, shown, description, readme, error)
    return redirect(request, shown.viewer, repository_path(shown.name))


def _edit_form(
    request: Request,
    shown: Shown,
    description: str,
    readme: str,
    error: RegistryError | None = None,
) -> Response:
    return render(
        request,
        shown.viewer,
        "repository_edit.html",
        error.status if error is not None else 200,
        repo=shown,
        description=description,
        readme=readme,
        error=error,
    )


async def visibility(request: Request) -> Response:
    shown, _ = await shown_repository(request)
    shown.require(shown.may_set_visibility)
    registry = registry_of(request)
    if request.method == "GET":
        wanted = request.query_params.get("to", "")
        if wanted not in VISIBILITIES:
            raise RegistryError(ErrorCode.BAD_REQUEST, "Visibility is public or private.")
        return render(
            request,
            shown.viewer,
            "repository_visibility.html",
            repo=shown,
            wanted=wanted,
            current=await registry.image_views.visibility(shown.name),
        )
    form = await posted_form(request, shown.viewer, registry.settings.body_timeout_seconds)
    await registry.accounts.set_visibility(shown.name, form.get("visibility", ""))
    return redirect(request, shown.viewer, repository_path(shown.name))


async def delete(request: Request) -> Response:
    """A tag (the tag alone goes) or a digest (the manifest and every tag naming it go)."""
    shown, _ = await shown_repository(request)
    shown.require(shown.may_delete)
    registry = registry_of(request)
    if request.method == "GET":
        reference = request.query_params.get("reference", "")
        image = await registry.image_views.image(shown.name, reference)
        return render(
            request,
            shown.viewer,
            "repository_delete.html",
            repo=shown,
            reference=reference,
            image=image,
            is_digest=":" in reference,
        )
    form = await posted_form(request, shown.viewer, registry.settings.body_timeout_seconds)
    reference = form.get("reference", "")
    auth = auth_of(request)
    principal = shown.viewer.principal

    async def hidden() -> bool:
        return (
            auth is not None
            and principal is not None
            and await auth.gate.hides(principal, shown.name)
        )

    await registry.repository(shown.name, hidden).manifests.delete(reference)
    return redirect(request, shown.viewer, repository_path(shown.name))
