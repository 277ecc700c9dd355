"""Turning a template into an answer: autoescaped HTML, the security headers every page
carries, and the session cookie when the viewer got a new one."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from dockyard.web import filters, sessions
from dockyard.web.site import registry_of, site_of
from dockyard.web.viewer import Viewer

# Scripts and styles only from the package's own /static/ files: no inline script, no inline
# style, nothing from elsewhere; forms post only here; no page may be framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Pages differ by viewer: never kept by a shared cache, nor shown again from history
    # after signing out.
    "Cache-Control": "no-store",
}


def environment() -> Environment:
    """The templates, HTML-escaped unless a value is marked safe."""
    env = Environment(
        loader=PackageLoader("dockyard.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(ago=filters.ago, iso_time=filters.iso_time, size=filters.size)
    return env


def secured(response: Response, request: Request, viewer: Viewer | None) -> Response:
    """Add the security headers, and the viewer's new session cookie if it has one."""
    response.headers.update(SECURITY_HEADERS)
    if viewer is not None and viewer.fresh_cookie is not None:
        set_session_cookie(response, request, viewer.fresh_cookie)
    return response


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    response.set_cookie(
        sessions.COOKIE,
        value,
        max_age=sessions.SESSION_SECONDS,
        path="/",
        httponly=True,
        # Over TLS the cookie is never sent in the clear; a TLS-ending proxy in front says so
        # by the scheme of the public URL.
        secure=is_tls(request),
        samesite="lax",
    )


def is_tls(request: Request) -> bool:
    settings = registry_of(request).settings
    return (
        settings.tls_cert is not None
        or request.url.scheme == "https"
        or (settings.public_url or "").startswith("https:")
    )


def render(
    request: Request, viewer: Viewer | None, template: str, status: int = 200, **context: Any
) -> Response:
    if "next_path" not in context:
        # Where "Sign in" comes back to: this page, unless it is an error, whose page must
        # not differ by the path asked for (a hidden repository answers as a missing one).
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        context["next_path"] = here if status < 400 and request.method == "GET" else "/"
    html = site_of(request).templates.get_template(template).render(viewer=viewer, **context)
    return secured(HTMLResponse(html, status_code=status), request, viewer)


def redirect(request: Request, viewer: Viewer | None, to: str) -> Response:
    """After a form: 303, so the browser follows with a GET."""
    return secured(RedirectResponse(to, status_code=303), request, viewer)
