"""S3 multipart uploads built from server-side part copies: the calls obstore does not expose.

An upload's chunks are objects of their own (`s3.py`); completing it asks the object store to
assemble them into the blob with `UploadPartCopy`, so the bytes never travel through the
registry again. Requests are signed with AWS Signature Version 4 (header form, the payload
left unsigned as S3 allows), which every S3-compatible store accepts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import quote
from xml.sax.saxutils import escape

import httpx

UNSIGNED = "UNSIGNED-PAYLOAD"
_HASH_ON_LOOP = 64 * 1024  # bytes of a part hashed on the event loop rather than in a thread
_ETAG = re.compile(r"<ETag>(.*?)</ETag>", re.S)
_UPLOAD_ID = re.compile(r"<UploadId>(.*?)</UploadId>", re.S)
_ERROR = re.compile(r"<Error>.*?<Code>(.*?)</Code>(?:.*?<Message>(.*?)</Message>)?", re.S)


class S3Error(Exception):
    """The object store refused a multipart call (its code and message are in the text)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None


def _encode(text: str, *, keep_slash: bool = False) -> str:
    return quote(text, safe="-_.~/" if keep_slash else "-_.~")


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def sign(
    method: str,
    url: httpx.URL,
    headers: dict[str, str],
    payload_hash: str,
    credentials: Credentials,
    region: str,
    now: dt.datetime,
) -> dict[str, str]:
    """`headers` plus the date, payload hash and Authorization of a SigV4-signed request.

    `url` must already carry its path and query percent-encoded as S3 expects (`_encode`)."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    signed = {k.lower(): " ".join(v.split()) for k, v in headers.items()}
    signed["host"] = url.netloc.decode("ascii")
    signed["x-amz-date"] = stamp
    signed["x-amz-content-sha256"] = payload_hash
    if credentials.session_token:
        signed["x-amz-security-token"] = credentials.session_token
    names = sorted(signed)
    query = url.query.decode("ascii")
    pairs = sorted(part.partition("=")[::2] for part in query.split("&") if part)
    canonical = "\n".join(
        [
            method,
            url.raw_path.decode("ascii").split("?", 1)[0],
            "&".join(f"{k}={v}" for k, v in pairs),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_hash,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            stamp,
            scope,
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + credentials.secret_key).encode(), day)
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {k: v for k, v in signed.items() if k != "host"}
    out["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out


class MultipartClient:
    """Create, fill (copy or upload parts), complete and abort multipart uploads of one bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str | None,
        region: str,
        path_style: bool,
        credentials: Credentials,
        timeout: float = 300.0,
    ) -> None:
        self.bucket = bucket
        self.region = region
        self.credentials = credentials
        base = httpx.URL(endpoint or f"https://s3.{region}.amazonaws.com")
        if path_style:
            self._origin = f"{base.scheme}://{base.netloc.decode()}"
            self._prefix = f"/{_encode(bucket)}/"
        else:
            self._origin = f"{base.scheme}://{bucket}.{base.netloc.decode()}"
            self._prefix = "/"
        self.http = httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self.http.aclose()

    def _url(self, key: str, query: dict[str, str]) -> httpx.URL:
        text = self._origin + self._prefix + _encode(key, keep_slash=True)
        if query:
            text += "?" + "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query.items()))
        return httpx.URL(text)

    async def _call(
        self,
        method: str,
        key: str,
        query: dict[str, str],
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        payload_hash: str = UNSIGNED,
    ) -> httpx.Response:
        url = self._url(key, query)
        signed = sign(
            method,
            url,
            headers or {},
            payload_hash,
            self.credentials,
            self.region,
            dt.datetime.now(dt.UTC),
        )
        response = await self.http.request(method, url, content=body, headers=signed)
        error = (
            _ERROR.search(response.text)
            if response.headers.get("content-type", "").endswith("xml")
            or response.status_code >= 300
            else None
        )
        if response.status_code >= 300 or error:
            code, message = (error.group(1), error.group(2) or "") if error else ("", "")
            raise S3Error(f"{method} {key}: {response.status_code} {code} {message}".strip())
        return response

    async def create(self, key: str) -> str:
        response = await self._call("POST", key, {"uploads": ""})
        found = _UPLOAD_ID.search(response.text)
        if found is None:
            raise S3Error(f"starting a multipart upload of {key}: no UploadId in the answer")
        return found.group(1)

    async def copy_part(
        self, key: str, upload_id: str, number: int, source: str, first: int, last: int
    ) -> str:
        """Part `number` of `key` is bytes [first, last] of object `source`: S3 copies them."""
        response = await self._call(
            "PUT",
            key,
            {"partNumber": str(number), "uploadId": upload_id},
            headers={
                "x-amz-copy-source": f"/{_encode(self.bucket)}/{_encode(source, keep_slash=True)}",
                "x-amz-copy-source-range": f"bytes={first}-{last}",
            },
        )
        found = _ETAG.search(response.text)
        if found is None:
            raise S3Error(f"copying part {number} of {key}: no ETag in the answer")
        return found.group(1).replace("&quot;", '"')

    async def put_part(self, key: str, upload_id: str, number: int, data: bytes) -> str:
        # The signature covers the part's bytes; hashing megabytes would hold the event loop
        # (hashlib lets go of the GIL for them, so a thread runs it beside the loop).
        payload_hash = (
            await asyncio.to_thread(_sha256_hex, data)
            if len(data) > _HASH_ON_LOOP
            else _sha256_hex(data)
        )
        response = await self._call(
            "PUT",
            key,
            {"partNumber": str(number), "uploadId": upload_id},
            body=data,
            payload_hash=payload_hash,
        )
        etag: str | None = response.headers.get("etag")
        if not etag:
            raise S3Error(f"uploading part {number} of {key}: no ETag in the answer")
        return etag

    async def complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None:
        body = (
            "<CompleteMultipartUpload>"
            + "".join(
                f"<Part><PartNumber>{n}</PartNumber><ETag>{escape(etag)}</ETag></Part>"
                for n, etag in parts
            )
            + "</CompleteMultipartUpload>"
        ).encode()
        await self._call(
            "POST",
            key,
            {"uploadId": upload_id},
            body=body,
            headers={"content-type": "application/xml"},
            payload_hash=hashlib.sha256(body).hexdigest(),
        )

    async def abort(self, key: str, upload_id: str) -> None:
        await self._call("DELETE", key, {"uploadId": upload_id})
