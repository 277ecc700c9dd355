"""`RegistryClient`: the Distribution API of one registry host, as async Python calls.

Any OCI / Docker v2 registry (Dockyard, CNCF Distribution, Docker Hub, GHCR...). Every answer
that is not the expected one becomes a `ClientError` subclass whose message says what to do;
manifests fetched by digest are verified; blob uploads are monolithic when small and streamed
in PATCH chunks otherwise, and a connection that breaks mid-upload resumes from the offset the
registry reports (`Range` of the upload's status), reopening the source at that offset.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx

from dockyard.client.auth import RegistryAuth, parse_challenges
from dockyard.client.blob_body import BlobBody
from dockyard.client.credentials import Credentials, CredentialStore, normalize_host
from dockyard.client.errors import (
    ClientError,
    ConnectionFailed,
    Denied,
    DigestMismatch,
    InUse,
    NotFound,
    Unauthorized,
)
from dockyard.client.image import BlobOpener, Manifest, ProgressCallback
from dockyard.client.transport import (
    DEFAULT_TIMEOUT,
    RetryPolicy,
    api_host,
    build_client,
    rate_limit_error,
    translate_error,
    uses_plain_http,
)
from dockyard.core import mediatypes as mt
from dockyard.core.manifest import Descriptor

ALL_MANIFEST_TYPES: tuple[str, ...] = (
    mt.OCI_INDEX,
    mt.OCI_MANIFEST,
    mt.DOCKER_MANIFEST_LIST,
    mt.DOCKER_MANIFEST,
)
MONOLITHIC_MAX = 8 * 1024 * 1024
CHUNK_SIZE = 16 * 1024 * 1024
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_PIECE = 256 * 1024
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;[^,]*rel="?next"?')
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,256}")
# Tags sent in one manifest push: the spec asks registries to take at least 10.
TAGS_PER_PUT = 10
# Pages of one listing followed at most: a registry whose `Link` never ends is cut off.
MAX_PAGES = 1000


def _is_digest(reference: str) -> bool:
    return ":" in reference


def _hash(algorithm: str, data: bytes) -> str:
    try:
        return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    except ValueError:
        raise ClientError(f"unsupported digest algorithm {algorithm!r}") from None


def _media_type(response: httpx.Response, body: bytes) -> str:
    header = response.headers.get("Content-Type", "").split(";")[0].strip()
    if header in mt.MANIFEST_TYPES or header in (mt.DOCKER_SCHEMA1, mt.DOCKER_SCHEMA1_SIGNED):
        return header
    try:
        doc = json.loads(body)
    except ValueError:
        return header or mt.OCI_MANIFEST
    if isinstance(doc, dict):
        if isinstance(doc.get("mediaType"), str):
            return doc["mediaType"]
        if "manifests" in doc:
            return mt.OCI_INDEX
    return header or mt.OCI_MANIFEST


class _Reader:
    """Reads exact byte counts from a blob stream (pieces come in whatever sizes they come)."""

    def __init__(self, stream: AsyncIterator[bytes]) -> None:
        self.stream = stream
        self.pending = b""

    async def read(self, limit: int) -> bytes:
        if not self.pending:
            try:
                self.pending = await anext(self.stream)
            except StopAsyncIteration:
                return b""
        piece, self.pending = self.pending[:limit], self.pending[limit:]
        return piece

    async def close(self) -> None:
        closer = getattr(self.stream, "aclose", None)
        if closer is not None:
            await closer()


class RegistryClient:
    """One registry host. Use as `async with RegistryClient("ghcr.io", store=...) as c:`.

    `credentials` wins over `store`; with neither, requests are anonymous. HTTPS is tried
    first; `insecure` (or the host appearing in `insecure_hosts`) allows plain HTTP when the
    host does not speak TLS and skips certificate checks, and loopback hosts allow plain HTTP
    too. `ca_certs` are PEM files of CAs to trust besides the system's and certs.d's. `scheme`
    ("https" or "http") is used as given, without trying HTTPS first.
    """

    def __init__(
        self,
        host: str,
        *,
        credentials: Credentials | None = None,
        store: CredentialStore | None = None,
        insecure: bool = False,
        insecure_hosts: Iterable[str] = (),
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        chunk_size: int = CHUNK_SIZE,
        monolithic_max: int = MONOLITHIC_MAX,
        max_resumes: int = 5,
        verify: bool | str = True,
        offline_token: bool = False,
        ca_certs: Iterable[str | Path] = (),
        scheme: str | None = None,
    ) -> None:
        self.host = normalize_host(host)
        self.api_host = api_host(self.host)
        insecure_hosts = [*insecure_hosts, *([self.host, self.api_host] if insecure else [])]
        if credentials is None and store is not None:
            credentials = store.get(self.host)
        self.credentials = credentials if credentials and not credentials.empty else None
        self.plain_http = uses_plain_http(self.api_host, insecure_hosts)
        self.auth = RegistryAuth(
            self.host,
            self.credentials,
            offline_token=offline_token,
            plain_http_ok=self.plain_http,
            api_host=self.api_host,
        )
        self.retry = retry or RetryPolicy()
        self.http = build_client(
            self.api_host,
            insecure_hosts=insecure_hosts,
            auth=self.auth,
            timeout=timeout,
            retry=self.retry,
            verify=verify,
            ca_certs=ca_certs,
            scheme=scheme,
        )
        self.chunk_size = chunk_size
        self.monolithic_max = monolithic_max
        self.max_resumes = max_resumes
        self._pinged = False
        self._ping_lock = asyncio.Lock()
        # Upload sessions a mount attempt opened (202) and nobody has used yet, per repository.
        self._spare_uploads: dict[str, list[str]] = {}

    @property
    def scheme(self) -> str | None:
        """How the host answered: "https" or "http", None before the first request."""
        return self.http.scheme

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- plumbing -------------------------------------------------------------------------

    def _url(self, location: str) -> httpx.URL:
        return self.http.base_url.join(location)

    async def _send(
        self, request: httpx.Request, *, stream: bool = False, follow_redirects: bool = False
    ) -> httpx.Response:
        await self._prepare()
        try:
            return await self.http.send(request, stream=stream, follow_redirects=follow_redirects)
        except httpx.HTTPError as exc:
            raise translate_error(exc, self.host) from None

    async def _call(
        self,
        method: str,
        url: str | httpx.URL,
        what: str,
        *,
        ok: Sequence[int] = (200,),
        **kwargs: Any,
    ) -> httpx.Response:
        extensions = kwargs.pop("extensions", None)
        # Reads follow redirects, as the spec asks; httpx drops Authorization on the way to
        # another host. Writes are not replayed elsewhere.
        follow = kwargs.pop("follow_redirects", method in ("GET", "HEAD"))
        request = self.http.build_request(method, url, extensions=extensions, **kwargs)
        response = await self._send(request, follow_redirects=follow)
        if response.status_code not in ok:
            raise self._error(response, what)
        return response

    def _error(self, response: httpx.Response, what: str) -> ClientError:
        """Turn an unexpected answer into the ClientError subclass for it, with advice."""
        error = self._classify(response, what)
        error.status = response.status_code  # type: ignore[attr-defined]
        return error

    def _classify(self, response: httpx.Response, what: str) -> ClientError:
        status = response.status_code
        code = message = detail = None
        try:
            errors = response.json().get("errors") or []
            if errors and isinstance(errors[0], dict):
                code, message = errors[0].get("code"), errors[0].get("message")
                detail = errors[0].get("detail")
        except (ValueError, AttributeError, httpx.ResponseNotRead):
            pass
        said = f" ({code}: {message})" if code else f" (HTTP {status})"
        login = f"run `dockyard login {self.host}`"
        if status == 429:
            return rate_limit_error(response, self.host)
        if status == 401:
            if self.credentials is None:
                return Unauthorized(
                    f"{what}: {self.host} requires authentication{said}; {login}",
                    code or "UNAUTHORIZED",
                )
            return Unauthorized(
                f"{what}: {self.host} refused the credentials of "
                f"{self.credentials.username or 'the stored token'}{said}; "
                f"check your access or {login} again",
                code or "UNAUTHORIZED",
            )
        if (
            status == 409
            and code == "DENIED"
            and isinstance(detail, dict)
            and isinstance(detail.get("indexes"), list)
        ):
            # Only digest-shaped strings reach the terminal: the body is the server's text.
            indexes = [
                d for d in detail["indexes"][:10] if isinstance(d, str) and _DIGEST.fullmatch(d)
            ]
            return InUse(
                f"{what}: {self.host} keeps it for the index {', '.join(indexes)}{said}", indexes
            )
        if status == 403 and message and str(message).startswith("the token "):
            # Dockyard says when the access token's scope, not the account, is the limit.
            return Denied(
                f"{what}: {self.host} refused it: {message}; log in with a token "
                "of that scope (or the password)",
                code or "DENIED",
            )
        if status == 403:
            return Denied(
                f"{what}: access denied by {self.host}{said}; check that the "
                f"account may access this repository, or {login} as another user",
                code or "DENIED",
            )
        if code in ("DIGEST_INVALID", "SIZE_INVALID"):
            return DigestMismatch(
                f"{what}: {self.host} refused the content{said}; the data "
                "does not match its digest or size",
                code,
            )
        if status == 404:
            return NotFound(
                f"{what}: not found on {self.host}{said}; check the name, tag or digest",
                code or "NOT_FOUND",
            )
        if code == "UNSUPPORTED" or status == 405:
            return ClientError(
                f"{what}: {self.host} does not support this operation{said}", code or "UNSUPPORTED"
            )
        if status >= 500:
            return ClientError(
                f"{what}: {self.host} failed with HTTP {status}{said}; try again later", code
            )
        return ClientError(f"{what}: {self.host} answered HTTP {status}{said}", code)

    async def _prepare(self) -> None:
        if not self._pinged:
            async with self._ping_lock:
                if not self._pinged:
                    await self.ping()

    # -- base -----------------------------------------------------------------------------

    async def ping(self) -> str | None:
        """Check that the host speaks the registry API; learn its auth scheme ('basic',
        'bearer' or None). Called once before the first real request."""
        try:
            response = await self.http.get("/v2/", auth=None)
        except httpx.HTTPError as exc:
            raise translate_error(exc, self.host) from None
        self._pinged = True
        if response.status_code == 401:
            challenges = parse_challenges(response.headers.get_list("WWW-Authenticate"))
            usable = [c for c in challenges if c.scheme in ("basic", "bearer")]
            if usable:
                self.auth.challenge = usable[0]
                return usable[0].scheme
            raise ClientError(
                f"{self.host} asks for an authentication scheme Dockyard does not speak",
                "UNAUTHORIZED",
            )
        if response.status_code == 200:
            return None
        if response.status_code == 429:
            raise rate_limit_error(response, self.host)
        raise ClientError(
            f"{self.host} does not serve the registry API at /v2/ (HTTP "
            f"{response.status_code}); check the host name and port"
        )

    async def check_login(self) -> str | None:
        """Verify the credentials as `docker login` does; return a refresh token when the
        registry's token service issued one (store it instead of the password)."""
        self.auth.offline_token = True
        rejected = Unauthorized(
            f"login to {self.host} failed: the registry rejected the "
            "credentials (wrong user name or password, or an expired or "
            "revoked token)",
            "UNAUTHORIZED",
        )
        try:
            response = await self._send(self.http.build_request("GET", "/v2/"))
        except Unauthorized:
            # The token service's refusal advises logging in, which is what failed.
            raise rejected from None
        if response.status_code == 401:
            raise rejected
        if response.status_code != 200:
            raise self._error(response, f"login to {self.host}")
        return self.auth.refresh_token

    # -- manifests ------------------------------------------------------------------------

    async def get_manifest(
        self, repo: str, reference: str, accept: Sequence[str] = ALL_MANIFEST_TYPES
    ) -> Manifest:
        """Fetch a manifest; when `reference` is a digest, the bytes are checked against it."""
        what = (
            f"getting manifest {repo}:{reference}"
            if not _is_digest(reference)
            else f"getting manifest {repo}@{reference}"
        )
        response = await self._call(
            "GET", f"/v2/{repo}/manifests/{reference}", what, headers={"Accept": ", ".join(accept)}
        )
        body = response.content
        if len(body) > MAX_MANIFEST_BYTES:
            raise ClientError(f"{what}: the manifest is larger than 4 MiB; refusing it")
        if _is_digest(reference):
            computed = _hash(reference.split(":", 1)[0], body)
            if computed != reference:
                raise DigestMismatch(
                    f"{what}: {self.host} sent content whose digest is {computed}; it was discarded"
                )
            digest = reference
        else:
            digest = _hash("sha256", body)
            claimed = response.headers.get("Docker-Content-Digest", "")
            if claimed.startswith("sha256:") and claimed != digest:
                raise DigestMismatch(
                    f"{what}: {self.host} claims digest {claimed} but sent "
                    f"content with digest {digest}; it was discarded"
                )
        return Manifest(body, _media_type(response, body), digest)

    async def head_manifest(
        self, repo: str, reference: str, accept: Sequence[str] = ALL_MANIFEST_TYPES
    ) -> Descriptor | None:
        """Media type, digest and size of a manifest without its body; None when absent."""
        response = await self._call(
            "HEAD",
            f"/v2/{repo}/manifests/{reference}",
            f"checking manifest {repo}:{reference}",
            ok=(200, 404),
            headers={"Accept": ", ".join(accept)},
        )
        if response.status_code == 404:
            return None
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:
            # Registries that omit the header: fall back to the body.
            manifest = await self.get_manifest(repo, reference, accept)
            return Descriptor(manifest.media_type, manifest.digest, len(manifest.body))
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        return Descriptor(media_type, digest, int(response.headers.get("Content-Length", 0)))

    async def put_manifest(self, repo: str, reference: str, manifest: Manifest) -> str:
        """Store under a tag or its digest; returns the digest, checked against the registry's."""
        await self._put_manifest(repo, reference, manifest)
        return manifest.digest

    async def put_referrer(self, repo: str, manifest: Manifest) -> bool:
        """Store a manifest with a `subject` by its digest; True when the registry says it
        indexed the subject (`OCI-Subject`), so no referrers tag needs updating."""
        response = await self._put_manifest(repo, manifest.digest, manifest)
        return bool(response.headers.get("OCI-Subject"))

    async def put_manifest_tags(self, repo: str, manifest: Manifest, tags: Sequence[str]) -> str:
        """Store by digest under every tag of `tags`: several in one request (`?tag=`) where
        the registry takes them, which its `OCI-Tag` answer says; a registry that ignores the
        parameter, or refuses the request as too long, gets one request per tag left."""
        applied: set[str] = set()
        for start in range(0, len(tags), TAGS_PER_PUT):
            batch = list(tags[start : start + TAGS_PER_PUT])
            try:
                response = await self._put_manifest(
                    repo, manifest.digest, manifest, params=[("tag", t) for t in batch]
                )
            except ClientError as exc:
                if getattr(exc, "status", None) not in (414, 431):
                    raise
                continue
            applied.update(
                t.strip() for t in response.headers.get_list("OCI-Tag", split_commas=True)
            )
        for tag in tags:
            if tag not in applied:
                await self._put_manifest(repo, tag, manifest)
        return manifest.digest

    async def _put_manifest(
        self,
        repo: str,
        reference: str,
        manifest: Manifest,
        params: list[tuple[str, str]] | None = None,
    ) -> httpx.Response:
        what = f"pushing manifest {repo}:{reference}"
        response = await self._call(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            what,
            ok=(200, 201, 202),
            content=manifest.body,
            headers={"Content-Type": manifest.media_type},
            params=params,
        )
        claimed = response.headers.get("Docker-Content-Digest")
        if (
            claimed
            and claimed.split(":")[0] == manifest.digest.split(":")[0]
            and claimed != manifest.digest
        ):
            raise DigestMismatch(
                f"{what}: {self.host} stored it as {claimed}, expected {manifest.digest}"
            )
        return response

    async def delete_manifest(self, repo: str, reference: str, *, force: bool = False) -> None:
        """`force`: delete even a manifest an index still names (Dockyard refuses it
        otherwise; other registries ignore the parameter)."""
        tag = not _is_digest(reference)
        what = (
            f"deleting tag {repo}:{reference}" if tag else f"deleting manifest {repo}@{reference}"
        )
        try:
            await self._call(
                "DELETE",
                f"/v2/{repo}/manifests/{reference}",
                what,
                ok=(200, 202, 204),
                params={"force": "true"} if force else None,
            )
        except InUse as exc:
            # Named as `dockyard delete` takes them, so the index can be deleted first.
            held_by = ", ".join(f"{self.host}/{repo}@{d}" for d in exc.indexes)
            raise InUse(
                f"{what}: it is part of the multi-platform index {held_by}; delete "
                "that index first, or pass --force to delete it anyway (the index "
                "then names a missing image)",
                exc.indexes,
            ) from None
        except ClientError as exc:
            # Registries without tag deletion (CNCF Distribution 2.x) answer a tag with
            # DIGEST_INVALID or UNSUPPORTED: nothing was sent, so no digest can mismatch.
            if tag and getattr(exc, "code", None) in ("DIGEST_INVALID", "UNSUPPORTED"):
                raise ClientError(
                    f"{what}: {self.host} does not support deleting a tag ("
                    f"{exc.code}); delete the manifest by digest instead, which "
                    "removes all its tags",
                    "UNSUPPORTED",
                ) from None
            raise

    # -- blobs ----------------------------------------------------------------------------

    async def blob_size(self, repo: str, digest: str) -> int | None:
        """The blob's size when the repository has it, else None."""
        response = await self._call(
            "HEAD",
            f"/v2/{repo}/blobs/{digest}",
            f"checking blob {digest} in {repo}",
            ok=(200, 404),
            follow_redirects=True,
        )
        if response.status_code == 404:
            return None
        return int(response.headers.get("Content-Length", 0))

    async def get_blob(self, repo: str, digest: str) -> BlobBody | None:
        """Send the GET of a whole blob (redirects followed) and return once its answer has
        arrived, the body unread: its Content-Length, if given, is known before any byte is
        read. None when the repository has no such blob. The caller reads the body with
        `chunks`, hashes it itself, and closes it with `aclose` in any case."""
        what = f"downloading blob {digest} from {repo}"
        request = self.http.build_request("GET", f"/v2/{repo}/blobs/{digest}")
        response = await self._send(request, stream=True, follow_redirects=True)
        if response.status_code == 200:
            return BlobBody(response, self.host)
        try:
            await response.aread()
        except httpx.HTTPError as exc:
            raise translate_error(exc, self.host) from None
        finally:
            await response.aclose()
        if response.status_code == 404:
            return None
        raise self._error(response, what)

    async def open_blob(
        self, repo: str, digest: str, offset: int = 0, *, verify: bool = True
    ) -> AsyncIterator[bytes]:
        """Stream a blob from `offset` (redirects followed). From offset 0 the bytes are
        verified against `digest` at the end, unless the caller hashes them itself
        (`verify=False`); a broken connection raises TransferInterrupted so the caller can
        reopen at the offset it reached."""
        what = f"downloading blob {digest} from {repo}"
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        request = self.http.build_request("GET", f"/v2/{repo}/blobs/{digest}", headers=headers)
        response = await self._send(request, stream=True, follow_redirects=True)
        try:
            if response.status_code not in (200, 206):
                await response.aread()
                raise self._error(response, what)
            skip = offset if response.status_code == 200 else 0
            hasher = None
            if offset == 0 and verify:
                algorithm = digest.split(":", 1)[0]
                try:
                    hasher = hashlib.new(algorithm)
                except ValueError:
                    hasher = None
            try:
                async for piece in response.aiter_raw():
                    if skip:
                        cut = min(skip, len(piece))
                        piece, skip = piece[cut:], skip - cut
                        if not piece:
                            continue
                    if hasher is not None:
                        hasher.update(piece)
                    yield piece
            except httpx.HTTPError as exc:
                raise translate_error(exc, self.host) from None
            if hasher is not None and f"{hasher.name}:{hasher.hexdigest()}" != digest:
                raise DigestMismatch(
                    f"{what}: the bytes received have digest "
                    f"{hasher.name}:{hasher.hexdigest()}; discard them"
                )
        finally:
            await response.aclose()

    async def delete_blob(self, repo: str, digest: str) -> None:
        await self._call(
            "DELETE",
            f"/v2/{repo}/blobs/{digest}",
            f"deleting blob {digest} from {repo}",
            ok=(200, 202, 204),
        )

    async def mount_blob(self, repo: str, digest: str, from_repo: str | None = None) -> bool:
        """Link a blob from `from_repo` (or, with None, wherever the registry knows it:
        OCI automatic mount). False when the registry opened an upload instead; that session is
        kept for the next `upload_blob` to the same repository."""
        params = {"mount": digest, **({"from": from_repo} if from_repo else {})}
        what = f"mounting blob {digest} into {repo}"
        response = await self._call(
            "POST", f"/v2/{repo}/blobs/uploads/", what, ok=(201, 202), params=params
        )
        if response.status_code == 201:
            return True
        location = response.headers.get("Location")
        if location:
            self._spare_uploads.setdefault(repo, []).append(location)
        return False

    async def _start_upload(self, repo: str) -> tuple[httpx.URL, int]:
        """An upload session: one a failed mount left behind, or a new one."""
        spare = self._spare_uploads.get(repo)
        if spare:
            return self._url(spare.pop()), 0
        response = await self._call(
            "POST", f"/v2/{repo}/blobs/uploads/", f"starting an upload to {repo}", ok=(202,)
        )
        return self._location(response), int(response.headers.get("OCI-Chunk-Min-Length") or 0)

    def _location(self, response: httpx.Response) -> httpx.URL:
        location = response.headers.get("Location")
        if not location:
            raise ClientError(f"{self.host} answered an upload request without a Location")
        return self._url(location)

    async def upload_blob(
        self,
        repo: str,
        descriptor: Descriptor,
        opener: BlobOpener,
        progress: ProgressCallback | None = None,
    ) -> str:
        """Upload and verify a blob; returns its digest. Small blobs go in one request; large
        ones in PATCH chunks that survive a broken connection (see the module docstring)."""
        if descriptor.size < self.monolithic_max:
            return await self._upload_whole(repo, descriptor, opener, progress)
        return await self._upload_chunked(repo, descriptor, opener, progress)

    async def _read_whole(self, descriptor: Descriptor, opener: BlobOpener) -> bytes:
        parts, total = [], 0
        async for piece in opener(0):
            total += len(piece)
            if total > descriptor.size:
                break
            parts.append(piece)
        data = b"".join(parts)
        if total != descriptor.size:
            raise DigestMismatch(
                f"blob {descriptor.digest}: the source holds "
                f"{'more than ' if total > descriptor.size else ''}{total} "
                f"bytes, the descriptor says {descriptor.size}"
            )
        return data

    async def _upload_whole(
        self,
        repo: str,
        descriptor: Descriptor,
        opener: BlobOpener,
        progress: ProgressCallback | None,
    ) -> str:
        data = await self._read_whole(descriptor, opener)
        what = f"uploading blob {descriptor.digest} to {repo}"
        attempt = 0
        while True:
            attempt += 1
            try:
                spare = self._spare_uploads.get(repo)
                if spare:
                    location = self._url(spare.pop())
                else:
                    # Monolithic POST (OCI); registries without it answer 202 and a Location.
                    response = await self._call(
                        "POST",
                        f"/v2/{repo}/blobs/uploads/",
                        what,
                        ok=(201, 202),
                        params={"digest": descriptor.digest},
                        content=data,
                        headers={"Content-Type": "application/octet-stream"},
                    )
                    if response.status_code == 201:
                        return self._check_stored(response, descriptor, what, data, progress)
                    location = self._location(response)
                response = await self._call(
                    "PUT",
                    location.copy_merge_params({"digest": descriptor.digest}),
                    what,
                    ok=(201, 204),
                    content=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
                return self._check_stored(response, descriptor, what, data, progress)
            except ConnectionFailed:
                if attempt >= self.retry.attempts:
                    raise
            await asyncio.sleep(self.retry.delay(attempt))

    def _check_stored(
        self,
        response: httpx.Response,
        descriptor: Descriptor,
        what: str,
        data: bytes | None,
        progress: ProgressCallback | None,
    ) -> str:
        claimed = response.headers.get("Docker-Content-Digest")
        if claimed and claimed != descriptor.digest:
            raise DigestMismatch(f"{what}: {self.host} stored it as {claimed}")
        if progress is not None and data is not None:
            progress(len(data))
        return descriptor.digest

    async def _upload_chunked(
        self,
        repo: str,
        descriptor: Descriptor,
        opener: BlobOpener,
        progress: ProgressCallback | None,
    ) -> str:
        what = f"uploading blob {descriptor.digest} to {repo}"
        size = descriptor.size
        location, min_chunk = await self._start_upload(repo)
        chunk = max(self.chunk_size, min_chunk)
        offset = sent = 0  # bytes the registry holds / bytes reported to `progress`
        reader = _Reader(opener(0))
        failures = 0
        last_error: Exception | None = None

        def report(n: int) -> None:
            nonlocal sent
            sent += n
            if progress is not None and n:
                progress(n)

        async def body(length: int) -> AsyncIterator[bytes]:
            remaining = length
            while remaining:
                piece = await reader.read(min(remaining, _PIECE))
                if not piece:
                    raise DigestMismatch(f"{what}: the source ended before {size} bytes")
                remaining -= len(piece)
                report(len(piece))
                yield piece

        try:
            while True:
                try:
                    if offset < size:
                        end = min(size, offset + chunk)
                        response = await self._call(
                            "PATCH",
                            location,
                            what,
                            ok=(202, 204),
                            content=body(end - offset),
                            headers={
                                "Content-Type": "application/octet-stream",
                                "Content-Length": str(end - offset),
                                "Content-Range": f"{offset}-{end - 1}",
                            },
                        )
                        location = self._location(response)
                        offset = end
                        failures = 0
                        continue
                    response = await self._call(
                        "PUT",
                        location.copy_merge_params({"digest": descriptor.digest}),
                        what,
                        ok=(201, 204),
                    )
                    return self._check_stored(response, descriptor, what, None, None)
                except ClientError as exc:
                    # Resumable: a broken connection, a session the registry forgot, and 416
                    # (the registry holds a different offset than we think): ask where it is.
                    if not (
                        isinstance(exc, ConnectionFailed)
                        or exc.code == "BLOB_UPLOAD_UNKNOWN"
                        or getattr(exc, "status", None) == 416
                    ):
                        raise
                    last_error = exc
                failures += 1
                if failures > self.max_resumes:
                    raise ClientError(
                        f"{what}: gave up after {self.max_resumes} attempts to "
                        f"resume; last error: {last_error}"
                    ) from None
                await asyncio.sleep(self.retry.delay(failures))
                if offset >= size and await self.blob_size(repo, descriptor.digest) is not None:
                    return descriptor.digest  # the closing PUT had landed before the break
                location, held, ambiguous = await self._resume_point(repo, location)
                if ambiguous and getattr(last_error, "status", None) == 416:
                    held = 1  # "0-0" meant one byte, not none
                offset = min(held, size)
                await reader.close()
                reader = _Reader(opener(offset))
                report(offset - sent)
        finally:
            await reader.close()

    async def _resume_point(self, repo: str, location: httpx.URL) -> tuple[httpx.URL, int, bool]:
        """Where the upload stands per the registry (GET on the session): its URL, the bytes it
        holds, and whether that count is the ambiguous "0-0". A new session at 0 when the
        registry has forgotten the old one."""
        request = self.http.build_request("GET", location)
        response = await self._send(request)
        if response.status_code == 404:
            new_location, _ = await self._start_upload(repo)
            return new_location, 0, False
        if response.status_code not in (200, 204):
            raise self._error(response, f"checking upload status in {repo}")
        held = response.headers.get("Range", "")
        match = re.fullmatch(r"(?:bytes=)?0-(\d+)", held.strip())
        next_location = self._location(response) if response.headers.get("Location") else location
        if not match:
            return next_location, 0, False
        end = int(match.group(1))
        # Distribution reports an empty upload as "0-0" too: assume empty, unless refused.
        return next_location, end + 1 if end > 0 else 0, end == 0

    # -- listings -------------------------------------------------------------------------

    async def _paged(self, path: str, key: str, what: str, page_size: int | None) -> list[str]:
        items: list[str] = []
        url: str | httpx.URL = path
        params = {"n": str(page_size)} if page_size else None
        seen: set[str] = set()
        while True:
            response = await self._call("GET", url, what, params=params)
            try:
                items += response.json().get(key) or []
            except (ValueError, AttributeError):
                raise ClientError(
                    f"{what}: {self.host} sent an answer that is not the expected JSON"
                ) from None
            match = _LINK_NEXT.search(response.headers.get("Link", ""))
            if not match:
                return items
            url, params = self._next_page(match.group(1), what, seen), None

    def _next_page(self, link: str, what: str, seen: set[str]) -> httpx.URL:
        """Where a `Link` says the next page is. Only this registry's own origin is asked: the
        client's credentials go with every request, and a registry must not be able to send
        them (or this client's requests) to another host."""
        url, base = self._url(link), self.http.base_url
        if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
            raise ClientError(
                f"{what}: {self.host} sent a next-page link to another host "
                f"({url.scheme}://{url.host}); it was not followed"
            )
        if str(url) in seen or len(seen) >= MAX_PAGES:
            raise ClientError(
                f"{what}: {self.host} sent next-page links that do not end "
                f"(a loop, or more than {MAX_PAGES} pages); stopped"
            )
        seen.add(str(url))
        return url

    async def list_tags(self, repo: str, page_size: int | None = None) -> list[str]:
        """Every tag, following `Link` pages."""
        return await self._paged(
            f"/v2/{repo}/tags/list", "tags", f"listing tags of {repo}", page_size
        )

    async def catalog(self, page_size: int | None = None) -> list[str]:
        """Every repository the registry lists (many public registries refuse this)."""
        return await self._paged(
            "/v2/_catalog", "repositories", f"listing repositories of {self.host}", page_size
        )

    async def referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[dict[str, Any]] | None:
        """Descriptors of the manifests whose `subject` is `digest`, from the referrers API
        (filtered here too when the registry did not say it filtered); None when the registry
        has no referrers API, so the caller falls back to the referrers tag."""
        what = f"listing referrers of {repo}@{digest}"
        params = {"artifactType": artifact_type} if artifact_type else None
        response = await self._call(
            "GET",
            f"/v2/{repo}/referrers/{digest}",
            what,
            ok=(200, 404, 405),
            params=params,
            headers={"Accept": mt.OCI_INDEX},
        )
        kind = response.headers.get("Content-Type", "").split(";")[0].strip()
        if response.status_code != 200 or kind != mt.OCI_INDEX:
            return None
        try:
            manifests = response.json().get("manifests") or []
        except (ValueError, AttributeError):
            raise ClientError(
                f"{what}: {self.host} sent an answer that is not an OCI index"
            ) from None
        found = [entry for entry in manifests if isinstance(entry, dict)]
        if artifact_type and "artifactType" not in response.headers.get("OCI-Filters-Applied", ""):
            found = [entry for entry in found if entry.get("artifactType") == artifact_type]
        return found
