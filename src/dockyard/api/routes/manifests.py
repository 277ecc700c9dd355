"""`/v2/<name>/manifests/<reference>`: GET, HEAD, PUT, DELETE by tag or digest."""

from __future__ import annotations

import functools

from starlette.requests import Request
from starlette.responses import Response

from dockyard.api.body import read_body
from dockyard.api.event_origin import note_origin, note_pull
from dockyard.api.responses import Prebuilt, encoded, prebuilt_headers
from dockyard.api.routes.common import (
    REPLAYABLE_KEY,
    count_pull,
    header,
    pull_headers,
    read_check,
    registry_of,
    repository_access,
    repository_of,
)
from dockyard.auth.scopes import DELETE, PULL, PUSH
from dockyard.core import mediatypes as mt
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.manifest import MAX_MANIFEST_BYTES

_TOO_LARGE = RegistryError(ErrorCode.MANIFEST_TOO_LARGE)


async def get(request: Request) -> Response | Prebuilt:
    """GET and HEAD."""
    name, caller = await repository_access(request, PULL)
    reference = request.path_params["reference"]
    repository = repository_of(request, name)
    manifests = repository.manifests
    record, warning = await manifests.get(reference)
    if ":" not in reference:
        # Clients such as skopeo send one Accept header per media type: read them all.
        accept = ",".join(
            v.decode("latin-1") for k, v in request.scope["headers"] if k == b"accept"
        )
        _negotiate(accept, record.media_type, record.digest)
    # Anonymous on a registry without accounts, a local repository, nothing to warn of: the
    # answer follows from the store alone and may be given again (`api.hot_reads`).
    replayable = caller is None and warning is None and repository.replayable
    if request.method == "GET":
        # HEAD carries no manifest, only its digest, which signers (cosign, notation,
        # `dockyard sign`) resolve a tag to before they sign: the policy guards the content.
        unsigned, judged = await registry_of(request).signature_gate.check(
            repository, reference, record
        )
        if unsigned:
            warning = f"{warning}, {unsigned}" if warning else unsigned
        replayable = replayable and not judged
    # What depends on the manifest alone is built once per manifest; the rest per request.
    digest, media_type, size = record.digest, record.media_type, record.size
    headers = prebuilt_headers(
        ("manifest", digest, media_type, size), lambda: _headers(digest, media_type, size)
    )
    extra: dict[str, str] = {"Warning": warning} if warning else {}
    if request.method == "HEAD":
        if caller is not None:  # free, and tells how many pulls are left
            extra.update(await pull_headers(request, caller))
        if replayable:
            request.scope[REPLAYABLE_KEY] = None
        return Prebuilt(200, (*headers, *encoded(extra)) if extra else headers)
    if caller is not None:  # only pulls that return a manifest count, as on Docker Hub
        await count_pull(request, caller, extra)
    etag = f'"{record.digest}"'
    if header(request, b"if-none-match") == etag:
        return Response(
            status_code=304,
            headers={"ETag": etag, "Docker-Content-Digest": record.digest},
        )
    registry = registry_of(request)
    if registry.settings.event_pulls:
        note_pull(
            request,
            caller,
            registry.events,
            name,
            (record.digest, record.media_type, record.size),
            reference,
        )
    body = await manifests.content(record)
    if replayable:  # with what a replay needs to note the pull as this one did
        request.scope[REPLAYABLE_KEY] = (name, reference, (digest, media_type, size))
    return Prebuilt(200, (*headers, *encoded(extra)) if extra else headers, body)


def _headers(digest: str, media_type: str, size: int) -> dict[str, str]:
    return {
        "Content-Type": media_type,
        "Docker-Content-Digest": digest,
        "ETag": f'"{digest}"',
        "Content-Length": str(size),
    }


async def put(request: Request) -> Response:
    name, caller = await repository_access(request, PULL, PUSH)
    note_origin(request, caller)
    reference = request.path_params["reference"]
    timeout = registry_of(request).settings.body_timeout_seconds
    result = await repository_of(request, name).manifests.put(
        reference,
        lambda: read_body(request, MAX_MANIFEST_BYTES, timeout, _TOO_LARGE),
        request.headers.get("content-type"),
        request.query_params.getlist("tag"),
        read_check(request, caller),
    )
    headers = {
        "Location": f"/v2/{name}/manifests/{result.digest}",
        "Docker-Content-Digest": result.digest,
        "Content-Length": "0",
    }
    if result.subject:
        headers["OCI-Subject"] = result.subject
    response = Response(status_code=201, headers=headers)
    if len(result.tags) > 1 or (result.tags and ":" in reference):
        # One OCI-Tag field per tag applied, as the spec's example shows for several tags.
        for tag in result.tags:
            response.raw_headers.append((b"oci-tag", tag.encode()))
    return response


async def delete(request: Request) -> Response:
    name, caller = await repository_access(request, DELETE)
    note_origin(request, caller)
    # Not in the distribution spec: a client that wants a child of an index gone anyway
    # says so. It needs nothing beyond the delete permission the request already has.
    force = request.query_params.get("force", "").lower() in ("true", "1")
    await repository_of(request, name).manifests.delete(
        request.path_params["reference"], force=force
    )
    return Response(status_code=202, headers={"Content-Length": "0"})


def _negotiate(accept: str, media_type: str, digest: str) -> None:
    """A client that names manifest types, none of them this one's, gets a clear 404."""
    accepted = _accepted(accept)
    if not accepted & mt.MANIFEST_TYPES or media_type in accepted:
        return
    if "*/*" in accepted or "application/*" in accepted:
        return
    raise RegistryError(
        ErrorCode.MANIFEST_UNKNOWN,
        f"the manifest is {media_type}, which the client's Accept header does not list",
        detail={"mediaType": media_type, "digest": digest},
    )


@functools.lru_cache(maxsize=256)
def _accepted(accept: str) -> frozenset[str]:
    """The media types an Accept header names: clients send the same few headers all day."""
    return frozenset(
        part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()
    )
