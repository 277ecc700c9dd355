"""`/v2/<name>/blobs/<digest>`: GET (with ranges), HEAD, DELETE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.responses import BlobResponse, Prebuilt, prebuilt_headers
from dockyard.api.routes.common import (
    REPLAYABLE_KEY,
    count_pull,
    header,
    registry_of,
    repository_access,
    repository_of,
)
from dockyard.auth.scopes import DELETE, PULL
from dockyard.core.manifest import MAX_MANIFEST_BYTES, may_be_manifest
from dockyard.core.ranges import parse_range
from dockyard.service.repository import Arriving

if TYPE_CHECKING:
    from dockyard.auth.requests import Caller


async def get(request: Request) -> Response | BlobResponse | Prebuilt:
    """GET (with ranges) and HEAD."""
    name, caller = await repository_access(request, PULL)
    head = request.method == "HEAD"
    repository = repository_of(request, name)
    blobs = repository.blobs
    info = await blobs.find(request.path_params["digest"], head=head)
    if isinstance(info, Arriving):
        return await _arriving(request, info, caller)
    if head and header(request, b"range") is None:  # the pulls' check for a layer, all day long
        digest, size = info.digest, info.size
        if caller is None and repository.replayable:  # see manifests.get
            request.scope[REPLAYABLE_KEY] = None
        return Prebuilt(200, prebuilt_headers(("blob", digest, size), lambda: _sized(digest, size)))
    headers = _headers(info.digest)
    if info.manifest and not head:  # a manifest's bytes are a pull by whichever route
        # ... and meet the signature policy by whichever route.
        record, _ = await repository.manifests.get(info.digest)
        unsigned = await registry_of(request).signature_gate.admit(repository, info.digest, record)
        if unsigned:
            headers["Warning"] = unsigned
        await count_pull(request, caller, headers)
    if not head:
        url = await blobs.redirect_url(info.digest)
        if url is not None:  # the object store serves the bytes; the registry does not carry them
            return Response(
                status_code=307,
                headers={
                    "Location": url,
                    "Docker-Content-Digest": info.digest,
                    "Content-Length": "0",
                },
            )
    span = parse_range(request.headers["range"], info.size) if "range" in request.headers else None
    if span is None:
        headers["Content-Length"] = str(info.size)
        return BlobResponse(
            200,
            headers,
            head=head,
            stream=lambda: blobs.read(info.digest, 0, info.size - 1),
        )
    start, end = span
    headers["Content-Length"] = str(end - start + 1)
    headers["Content-Range"] = f"bytes {start}-{end}/{info.size}"
    return BlobResponse(206, headers, head=head, stream=lambda: blobs.read(info.digest, start, end))


async def delete(request: Request) -> Response:
    name, _ = await repository_access(request, DELETE)
    await repository_of(request, name).blobs.delete(request.path_params["digest"])
    return Response(status_code=202, headers={"Content-Length": "0"})


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _sized(digest: str, size: int) -> dict[str, str]:
    headers = _headers(digest)
    headers["Content-Length"] = str(size)
    return headers


def _headers(digest: str) -> dict[str, str]:
    return {
        "Content-Type": "application/octet-stream",
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }


async def _arriving(request: Request, blob: Arriving, caller: Caller | None) -> BlobResponse:
    """A blob the registry does not hold yet: HEAD answers its size, GET streams it as it
    arrives. Bytes that may be a manifest (small JSON) are answered once all are here and
    verified: by then the registry knows whether they are one, and reading one is a pull."""
    headers = _headers(blob.digest)
    size, stream = blob.size, blob.stream
    if stream is None:
        headers["Content-Length"] = str(size)
        return BlobResponse(200, headers, head=True)
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
        if await blob.is_manifest():
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
