"""The registry's error table and the one exception type that carries it.

Every failure a client can see is a `RegistryError` holding an `ErrorCode`; the HTTP layer renders
it once, as the Distribution Spec's JSON body. Handlers and services never choose status codes:
when the same spec code needs another status (a manifest too large is `MANIFEST_INVALID` with
413), that pairing is a row of its own here, so the table lists every answer a client can get.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.Enum):
    """Each row: the `code` string in the body, the HTTP status, the default message.

    A row's name says what went wrong; its `code` is what clients match on, which for `/v2/`
    is one of the Distribution Spec's fourteen and never anything else. No two rows share a
    (code, status) pair."""

    # The spec's codes, with the status the spec gives them.
    BLOB_UNKNOWN = ("BLOB_UNKNOWN", 404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = ("BLOB_UPLOAD_INVALID", 400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = ("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry")
    DIGEST_INVALID = ("DIGEST_INVALID", 400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = (
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a manifest or blob unknown to registry",
    )
    MANIFEST_INVALID = ("MANIFEST_INVALID", 400, "manifest invalid")
    MANIFEST_UNKNOWN = ("MANIFEST_UNKNOWN", 404, "manifest unknown to registry")
    NAME_INVALID = ("NAME_INVALID", 400, "invalid repository name")
    NAME_UNKNOWN = ("NAME_UNKNOWN", 404, "repository name not known to registry")
    SIZE_INVALID = ("SIZE_INVALID", 400, "provided length did not match content length")
    UNAUTHORIZED = ("UNAUTHORIZED", 401, "authentication required")
    DENIED = ("DENIED", 403, "requested access to the resource is denied")
    UNSUPPORTED = ("UNSUPPORTED", 405, "the operation is unsupported")
    TOOMANYREQUESTS = ("TOOMANYREQUESTS", 429, "too many requests")

    # The spec's codes where HTTP has a more precise status: bad input on /v2/ always gets
    # one of the fourteen codes above, whatever its status.
    MANIFEST_TOO_LARGE = ("MANIFEST_INVALID", 413, "manifest exceeds 4 MiB")
    MANIFEST_CHILD_UNKNOWN = ("MANIFEST_UNKNOWN", 400, "index refers to unknown manifests")
    # 409: the request is fine, the repository's state forbids it until the index goes.
    MANIFEST_IN_USE = ("DENIED", 409, "manifest is a child of an index in this repository")
    BLOB_UPLOAD_RANGE_INVALID = (
        "BLOB_UPLOAD_INVALID",
        416,
        "chunk does not continue the upload at its end",
    )
    BODY_TIMEOUT = ("BLOB_UPLOAD_INVALID", 408, "no request body data; upload abandoned")
    RANGE_NOT_SATISFIABLE = ("SIZE_INVALID", 416, "requested range not satisfiable")
    # A query or form parameter with a value we do not take (`n`, `grant_type`).
    PARAMETER_UNSUPPORTED = ("UNSUPPORTED", 400, "a parameter has a value not supported here")
    ENDPOINT_UNKNOWN = ("UNSUPPORTED", 404, "no such endpoint")
    BODY_TOO_LARGE = ("UNSUPPORTED", 413, "request body too large")
    # The spec lets a registry answer 414 to a manifest push naming more tags than it takes.
    TOO_MANY_TAGS = ("UNSUPPORTED", 414, "too many tags in one manifest push")
    MEDIA_TYPE_UNSUPPORTED = ("UNSUPPORTED", 415, "the body must be application/json")

    # The account API's own (`/api/v1/`); a refusal there is DENIED, as on /v2/.
    BAD_REQUEST = ("BAD_REQUEST", 400, "the request is invalid")
    NOT_FOUND = ("NOT_FOUND", 404, "no such account, organisation, token or repository")
    CONFLICT = ("CONFLICT", 409, "that conflicts with what exists")

    # Our own, only for server-side conditions the spec has no code for.
    INSUFFICIENT_STORAGE = (
        "INSUFFICIENT_STORAGE",
        507,
        "the registry has no room left to store this",
    )
    UNAVAILABLE = ("UNAVAILABLE", 503, "service unavailable")
    UNKNOWN = ("UNKNOWN", 500, "internal error")

    @property
    def code(self) -> str:
        """The `code` string of the body, which clients match on."""
        return self.value[0]

    @property
    def status(self) -> int:
        return self.value[1]

    @property
    def message(self) -> str:
        return self.value[2]


class RegistryError(Exception):
    """A failure with a row of the error table; its status is always the row's."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        detail: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message or code.message
        self.detail = detail
        self.status = code.status
        self.headers = headers or {}
        super().__init__(f"{code.code}: {self.message}")

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}


class StorageFullError(RegistryError):
    """A store ran out of room; nothing of the failed write was acknowledged."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(ErrorCode.INSUFFICIENT_STORAGE)
        self.cause = detail
