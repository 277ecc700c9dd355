"""The web pages served at `/` by `dockyard serve` (on unless `--no-ui`): server-rendered HTML
from Jinja2 templates (autoescaped), one stylesheet, no inline script or style.

The layer sits under `api` (which mounts it) and over `auth`: it asks the same access gate as
the registry API what a viewer may see (`viewer.may_see`, `viewer.visible`), calls the same
services, and never imports `storage` or `metadata` (no SQL here).

How to add a page:

1. A handler in `pages/<subject>.py`: `viewer = await viewer_of(request)`, then ask
   `may_see` / `visible` before showing a repository, and `raise not_found()` for anything
   missing *or* hidden (one answer for both); return `render(request, viewer, "x.html", …)`.
2. A template `templates/x.html` extending `base.html` (labels on every input, no `style=`
   attributes or inline script: the Content-Security-Policy refuses them).
3. A form posts with `<input type="hidden" name="csrf" value="{{ viewer.csrf }}">`; its
   handler reads it with `forms.posted_form(request, viewer, timeout)`, which refuses a
   missing or foreign token, then answers with `redirect(request, viewer, path)`.
4. A line in `routes.routes()`, wrapping the handler with `page(site, handler)` (errors
   become pages with their `core/errors.py` status, security headers on every answer).
5. A browser test under `tests/web/` using the `visit` fixture (screenshot and axe check).
"""
