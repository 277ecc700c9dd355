"""The web pages' paths, appended to the API's route table by `api.app` when the UI is on.

Paths are chosen not to meet the registry's: `/v2/…`, `/token` and `/api/v1/…` stay the
API's, namespaces live under `/u/`, repositories under `/r/`.
"""

from __future__ import annotations

from starlette.routing import Route

from dockyard.web import static
from dockyard.web.pages import (
    account,
    admin,
    browse,
    image,
    namespace_settings,
    repository,
    session,
)
from dockyard.web.pages.common import page
from dockyard.web.rendering import environment
from dockyard.web.site import Site


def routes() -> list[Route]:
    site = Site(environment())
    return [
        Route("/", page(site, browse.home), methods=["GET"]),
        Route("/u/{namespace}", page(site, browse.namespace), methods=["GET"]),
        Route("/u/{namespace}/-/members", page(site, namespace_settings.members), methods=["GET"]),
        Route(
            "/u/{namespace}/-/members",
            page(site, namespace_settings.set_member),
            methods=["POST"],
        ),
        Route(
            "/u/{namespace}/-/members/remove",
            page(site, namespace_settings.remove_member),
            methods=["GET", "POST"],
        ),
        Route(
            "/u/{namespace}/-/default-visibility",
            page(site, namespace_settings.default_visibility),
            methods=["GET", "POST"],
        ),
        Route("/sign-in", page(site, session.sign_in), methods=["GET", "POST"]),
        Route("/sign-out", page(site, session.sign_out), methods=["POST"]),
        Route("/account/tokens", page(site, account.tokens), methods=["GET"]),
        Route("/account/tokens", page(site, account.create_token), methods=["POST"]),
        Route("/account/tokens/revoke", page(site, account.revoke_token), methods=["POST"]),
        Route("/account/password", page(site, account.password), methods=["GET", "POST"]),
        Route("/admin/users", page(site, admin.users), methods=["GET"]),
        Route("/admin/users", page(site, admin.add_user), methods=["POST"]),
        Route("/admin/users/disable", page(site, admin.disable_user), methods=["GET", "POST"]),
        Route("/admin/users/enable", page(site, admin.enable_user), methods=["GET", "POST"]),
        Route("/admin/users/password", page(site, admin.set_password), methods=["POST"]),
        Route("/admin/usage", page(site, admin.usage), methods=["GET"]),
        Route("/static/{file}", static.serve, methods=["GET"]),
        # A repository's own pages: `/-/` is no path component of any repository name.
        Route("/r/{name:path}/-/image/{reference}", page(site, image.show), methods=["GET"]),
        Route("/r/{name:path}/-/raw/{reference}", page(site, image.raw), methods=["GET"]),
        Route("/r/{name:path}/-/raw/{reference}/{part}", page(site, image.raw), methods=["GET"]),
        Route("/r/{name:path}/-/edit", page(site, repository.edit), methods=["GET", "POST"]),
        Route(
            "/r/{name:path}/-/visibility",
            page(site, repository.visibility),
            methods=["GET", "POST"],
        ),
        Route("/r/{name:path}/-/delete", page(site, repository.delete), methods=["GET", "POST"]),
        Route("/r/{name:path}", page(site, repository.show), methods=["GET"]),
    ]
