"""One module per resource of the Distribution API; `table()` binds them to paths."""

from __future__ import annotations

from starlette.routing import Route

from dockyard.api.routes import base, blobs, catalog, manifests, referrers, tags, uploads

NAME = "/v2/{name:path}"


def table(read_only: bool) -> list[Route]:
    """The route table; in read-only mode the mutating methods are simply absent (405)."""

    def methods(read: list[str], write: list[str]) -> list[str]:
        return read if read_only else read + write

    return [
        Route("/v2/", base.version_check, methods=["GET"]),
        Route("/v2/_catalog", catalog.list_repositories, methods=["GET"]),
        Route(f"{NAME}/tags/list", tags.list_tags, methods=["GET"]),
        Route(f"{NAME}/referrers/{{digest}}", referrers.list_referrers, methods=["GET"]),
        Route(
            f"{NAME}/manifests/{{reference}}",
            manifests.endpoint,
            methods=methods(["GET", "HEAD"], ["PUT", "DELETE"]),
        ),
        Route(f"{NAME}/blobs/uploads/", uploads.start, methods=methods([], ["POST"])),
        Route(
            f"{NAME}/blobs/uploads/{{upload_id}}",
            uploads.session,
            methods=methods(["GET"], ["PATCH", "PUT", "DELETE"]),
        ),
        Route(
            f"{NAME}/blobs/{{digest}}", blobs.endpoint, methods=methods(["GET", "HEAD"], ["DELETE"])
        ),
    ]
