"""The registry's error table and the one exception type that carries it.

Every failure a client can see is a `RegistryError` holding an `ErrorCode`; the HTTP layer renders
it once, as the Distribution Spec's JSON body. Handlers and services never choose status codes.
"""

from __future__ import annotations

import enum
from typing import Any


class ErrorCode(enum.Enum):
    """Spec codes and a few server-side ones, each with its default HTTP status and message."""

    BLOB_UNKNOWN = (404, "blob unknown to registry")
    BLOB_UPLOAD_INVALID = (400, "blob upload invalid")
    BLOB_UPLOAD_UNKNOWN = (404, "blob upload unknown to registry")
    DIGEST_INVALID = (400, "provided digest did not match uploaded content")
    MANIFEST_BLOB_UNKNOWN = (400, "manifest references a manifest or blob unknown to registry")
    MANIFEST_INVALID = (400, "manifest invalid")
    MANIFEST_UNKNOWN = (404, "manifest unknown to registry")
    NAME_INVALID = (400, "invalid repository name")
    NAME_UNKNOWN = (404, "repository name not known to registry")
    SIZE_INVALID = (400, "provided length did not match content length")
    UNAUTHORIZED = (401, "authentication required")
    DENIED = (403, "requested access to the resource is denied")
    UNSUPPORTED = (405, "the operation is unsupported")
    TOOMANYREQUESTS = (429, "too many requests")
    # Our own, only for server-side conditions the spec has no code for; bad input always gets
    # one of the fourteen above (with a more precise status where HTTP has one, e.g. 413, 416).
    INSUFFICIENT_STORAGE = (507, "the registry has no room left to store this")
    UNAVAILABLE = (503, "service unavailable")
    UNKNOWN = (500, "internal error")

    @property
    def status(self) -> int:
        return self.value[0]

    @property
    def message(self) -> str:
        return self.value[1]


class RegistryError(Exception):
    """A failure with a spec error code; `status` may override the code's default status."""

    def __init__(
        self,
        code: ErrorCode,
        message: str | None = None,
        detail: Any = None,
        *,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code
        self.message = message or code.message
        self.detail = detail
        self.status = status or code.status
        self.headers = headers or {}
        super().__init__(f"{code.name}: {self.message}")

    def to_json(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code.name, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}


class StorageFullError(RegistryError):
    """A store ran out of room; nothing of the failed write was acknowledged."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(ErrorCode.INSUFFICIENT_STORAGE)
        self.cause = detail
