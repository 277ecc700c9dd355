"""`/v2/<name>/blobs/<digest>`: GET (with ranges), HEAD, DELETE."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.responses import BlobResponse
from dockyard.api.routes.common import registry_of, repository_access
from dockyard.auth.scopes import DELETE, PULL
from dockyard.core.ranges import parse_range


async def endpoint(request: Request) -> Response | BlobResponse:
    deleting = request.method == "DELETE"
    name, _ = await repository_access(request, DELETE if deleting else PULL)
    registry = registry_of(request)
    digest = request.path_params["digest"]
    if deleting:
        await registry.blobs.delete(name, digest)
        return Response(status_code=202, headers={"Content-Length": "0"})

    info = await registry.blobs.stat(name, digest)
    headers = {
        "Content-Type": "application/octet-stream",
        "Docker-Content-Digest": info.digest,
        "ETag": f'"{info.digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }
    head = request.method == "HEAD"
    span = parse_range(request.headers["range"], info.size) if "range" in request.headers else None
    if span is None:
        headers["Content-Length"] = str(info.size)
        return BlobResponse(
            200,
            headers,
            path=info.path,
            head=head,
            stream=lambda: registry.blobs.read(info.digest, 0, info.size - 1),
        )
    start, end = span
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    return BlobResponse(
        206, headers, head=head, stream=lambda: registry.blobs.read(info.digest, start, end)
    )
