"""`/v2/<name>/blobs/uploads/`: start (monolithic, mount), then PATCH, PUT, GET, DELETE."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.body import has_body, stream_body
from dockyard.api.routes.common import (
    read_check,
    registry_of,
    repository_access,
    repository_of,
)
from dockyard.auth.scopes import PULL, PUSH
from dockyard.core.digest import algorithm_of
from dockyard.core.ranges import parse_content_range
from dockyard.service.uploads import UploadStatus


def _progress(status: UploadStatus, code: int = 202) -> Response:
    location = f"/v2/{status.repository}/blobs/uploads/{status.id}"
    return Response(
        status_code=code,
        headers={
            "Location": location,
            "Range": f"0-{max(status.size - 1, 0)}",
            "Docker-Upload-UUID": status.id,
            "Content-Length": "0",
        },
    )


def _created(name: str, digest: str) -> Response:
    return Response(
        status_code=201,
        headers={
            "Location": f"/v2/{name}/blobs/{digest}",
            "Docker-Content-Digest": digest,
            "Content-Length": "0",
        },
    )


async def start(request: Request) -> Response:
    """POST: a new upload, a whole blob at once (`digest`), or a mount (`mount`, `from`); a
    new upload hashes as it goes with the `digest-algorithm` chosen (sha256 by default)."""
    name, caller = await repository_access(request, PULL, PUSH)
    repository = repository_of(request, name)
    params = request.query_params
    # Checked first, so an unsupported algorithm is refused however the upload would go.
    algorithm = algorithm_of(params.get("digest-algorithm"))
    mount = params.get("mount")
    if mount:
        mounted = await repository.blobs.mount(
            mount, params.get("from"), read_check(request, caller)
        )
        if mounted is not None:
            return _created(name, mounted)
    digest = params.get("digest")
    if digest is not None and not mount:
        timeout = registry_of(request).settings.body_timeout_seconds
        return _created(
            name, await repository.uploads.monolithic(digest, stream_body(request, timeout))
        )
    started = _progress(await repository.uploads.start(algorithm))
    minimum = registry_of(request).uploads.chunk_minimum.advertised
    if minimum:
        started.headers["OCI-Chunk-Min-Length"] = str(minimum)
    return started


async def status(request: Request) -> Response:
    """GET: how far the upload got. A read, as in Distribution; the other methods write."""
    name, _ = await repository_access(request, PULL)
    uploads = repository_of(request, name).uploads
    return _progress(await uploads.status(request.path_params["upload_id"]), 204)


async def append(request: Request) -> Response:
    """PATCH: the next chunk."""
    name, _ = await repository_access(request, PULL, PUSH)
    uploads = repository_of(request, name).uploads
    timeout = registry_of(request).settings.body_timeout_seconds
    return _progress(
        await uploads.append(
            request.path_params["upload_id"], stream_body(request, timeout), _span(request)
        )
    )


async def finish(request: Request) -> Response:
    """PUT: close the upload, optionally with a last chunk."""
    name, _ = await repository_access(request, PULL, PUSH)
    uploads = repository_of(request, name).uploads
    timeout = registry_of(request).settings.body_timeout_seconds
    span = _span(request)
    chunks = stream_body(request, timeout) if has_body(request) else None
    digest = await uploads.finish(
        request.path_params["upload_id"], request.query_params.get("digest"), chunks, span
    )
    return _created(name, digest)


async def cancel(request: Request) -> Response:
    name, _ = await repository_access(request, PULL, PUSH)
    await repository_of(request, name).uploads.cancel(request.path_params["upload_id"])
    return Response(status_code=204, headers={"Content-Length": "0"})


def _span(request: Request) -> tuple[int, int] | None:
    content_range = request.headers.get("content-range")
    return parse_content_range(content_range) if content_range else None
