"""`/v2/<name>/blobs/uploads/`: start (monolithic, mount), then PATCH, PUT, GET, DELETE."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.body import has_body, stream_body
from dockyard.api.routes.common import (
    cache_route,
    read_check,
    registry_of,
    repository_access,
)
from dockyard.auth.scopes import PULL, PUSH
from dockyard.core.digest import Digest
from dockyard.core.names import validate_name
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
    name, caller = await repository_access(request, PULL, PUSH)
    await cache_route(request, name, writing=True)
    registry = registry_of(request)
    params = request.query_params
    mount = params.get("mount")
    if mount:
        digest = str(Digest.parse(mount))
        source = params.get("from")
        if source is not None:
            validate_name(source)
        if await registry.blobs.mount(name, digest, source, read_check(request, caller)):
            return _created(name, digest)
    digest_param = params.get("digest")
    if digest_param is not None and not mount:
        chunks = stream_body(request, registry.settings.body_timeout_seconds)
        digest = await registry.uploads.monolithic(name, digest_param, chunks)
        return _created(name, digest)
    return _progress(await registry.uploads.start(name))


async def session(request: Request) -> Response:
    # Reading an upload's status is a read, as in Distribution; the rest writes.
    reading = request.method == "GET"
    name, _ = await repository_access(request, *((PULL,) if reading else (PULL, PUSH)))
    registry = registry_of(request)
    upload_id = request.path_params["upload_id"]
    uploads = registry.uploads
    timeout = registry.settings.body_timeout_seconds

    if reading:
        return _progress(await uploads.status(name, upload_id), 204)
    if request.method == "DELETE":
        await uploads.cancel(name, upload_id)
        return Response(status_code=204, headers={"Content-Length": "0"})

    content_range = request.headers.get("content-range")
    span = parse_content_range(content_range) if content_range else None
    if request.method == "PATCH":
        status = await uploads.append(name, upload_id, stream_body(request, timeout), span)
        return _progress(status)
    # PUT closes the upload, optionally with a last chunk.
    chunks = stream_body(request, timeout) if has_body(request) else None
    digest = await uploads.finish(name, upload_id, request.query_params.get("digest"), chunks, span)
    return _created(name, digest)
