"""`/v2/<name>/blobs/<digest>`: GET (with ranges), HEAD, DELETE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.responses import BlobResponse
from dockyard.api.routes.common import (
    cache_route,
    count_pull,
    proxy_of,
    registry_of,
    repository_access,
)
from dockyard.auth.scopes import DELETE, PULL
from dockyard.core.digest import Digest
from dockyard.core.manifest import MAX_MANIFEST_BYTES, may_be_manifest
from dockyard.core.ranges import parse_range

if TYPE_CHECKING:
    from dockyard.auth.requests import Caller
    from dockyard.service.proxy import Route


async def endpoint(request: Request) -> Response | BlobResponse:
    deleting = request.method == "DELETE"
    name, caller = await repository_access(request, DELETE if deleting else PULL)
    registry = registry_of(request)
    digest = request.path_params["digest"]
    route = await cache_route(request, name, writing=deleting)
    if deleting:
        await registry.blobs.delete(name, digest)
        return Response(status_code=202, headers={"Content-Length": "0"})
    if route is not None:
        digest = str(Digest.parse(digest))
        info = await proxy_of(request).cached_content(route, digest)
        if info is None:
            return await _through_cache(request, route, digest, caller)
    else:
        info = await registry.blobs.stat(name, digest)
    headers = _headers(info.digest)
    head = request.method == "HEAD"
    if info.manifest and not head:  # a manifest's bytes are a pull by whichever route
        await count_pull(request, caller, headers)
    if not head:
        url = await registry.blobs.redirect_url(info.digest)
        if url is not None:  # the object store serves the bytes; the registry does not carry them
            return Response(status_code=307, headers={
                "Location": url, "Docker-Content-Digest": info.digest, "Content-Length": "0"})
    span = parse_range(request.headers["range"], info.size) if "range" in request.headers else None
    if span is None:
        headers["Content-Length"] = str(info.size)
        return BlobResponse(
            200,
            headers,
            head=head,
            stream=lambda: registry.blobs.read(info.digest, 0, info.size - 1),
        )
    start, end = span
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    return BlobResponse(
        206, headers, head=head, stream=lambda: registry.blobs.read(info.digest, start, end)
    )


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _headers(digest: str) -> dict[str, str]:
    return {
        "Content-Type": "application/octet-stream",
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }


async def _through_cache(
    request: Request, route: Route, digest: str, caller: Caller | None
) -> BlobResponse:
    """A blob the cache does not hold yet: HEAD asks the upstream, GET streams the download
    (whole: a range of an uncached blob is served once the blob is here). Bytes that may be
    a manifest (small JSON) are answered once all are here and verified: by then the cache
    knows whether they are one, and reading one is a pull."""
    proxy = proxy_of(request)
    headers = _headers(digest)
    if request.method == "HEAD":
        headers["Content-Length"] = str(await proxy.blob_size(route, digest))
        return BlobResponse(200, headers, head=True)
    size, stream = await proxy.fetch_blob(route, digest)
    # Wait for the first bytes before answering: a download that fails before any byte
    # arrived is still a clean 503 here (once the response has started, the server can only
    # cut it short, and before its first body byte it would answer a bare 500).
    first = await anext(stream, None)
    if first is not None and size <= MAX_MANIFEST_BYTES and may_be_manifest(first):
        pieces = [first]
        try:
            async for chunk in stream:
                pieces.append(chunk)
        finally:
            await stream.aclose()
        if await proxy.is_manifest(route, digest):
            await count_pull(request, caller, headers)
        headers["Content-Length"] = str(size)
        whole = b"".join(pieces)
        return BlobResponse(200, headers, stream=lambda: _once(whole))

    async def body() -> AsyncIterator[bytes]:
        try:
            if first is not None:
                yield first
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()

    headers["Content-Length"] = str(size)
    return BlobResponse(200, headers, stream=body)
