"""The server's log lines: the request they were written for, their two formats, and what
they must never carry.

Every line written while a request is served names that request (`REQUEST_ID`, a context
variable the HTTP layer sets), so the lines of one request can be found among many workers'.
Both formats pass the text through `redact`: a signed URL (S3's presigned redirects, an
upstream's own), a URL's user and password, or a secret query parameter is cut out of any
line, whoever wrote it (our code, httpx, granian).
"""

from __future__ import annotations

import json
import logging
import re
import time
from contextvars import ContextVar

REQUEST_ID: ContextVar[str | None] = ContextVar("dockyard_request_id", default=None)

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Query parameters whose value grants access: S3 and Azure signatures, OAuth tokens, passwords.
_SECRET_PARAMS = (
    "x-amz-signature|x-amz-credential|x-amz-security-token|signature|sig|token|access_token|"
    "refresh_token|password|secret|key|x-goog-signature|x-goog-credential"
)
_SECRET_QUERY = re.compile(rf"(?i)([?&](?:{_SECRET_PARAMS})=)[^&\s\"'<>]*")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@\"'<>]+@")
_AUTHORIZATION = re.compile(r"(?i)\b(authorization|cookie|set-cookie)(['\"]?\s*[:=]\s*)[^\n]*")
REDACTED = "REDACTED"


def redact(text: str) -> str:
    """`text` without secret query values, URL credentials or Authorization/Cookie values.

    Cheap on the common line: each pattern is tried only when a character it needs is there.
    """
    if "=" in text:
        text = _SECRET_QUERY.sub(rf"\g<1>{REDACTED}", text)
    if "@" in text:
        text = _USERINFO.sub(rf"\g<1>{REDACTED}@", text)
    lowered = text.lower()
    if "authorization" in lowered or "cookie" in lowered:
        text = _AUTHORIZATION.sub(rf"\g<1>\g<2>{REDACTED}", text)
    return text


def has_secret_query(path: str) -> bool:
    """Whether a request path's query carries a parameter `redact` would cut."""
    return "?" in path and _SECRET_QUERY.search(path) is not None


class TextFormatter(logging.Formatter):
    """The human format (`PLAIN_FORMAT`), redacted, with `request_id=` on a request's lines."""

    def __init__(self) -> None:
        super().__init__(PLAIN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        request_id = REQUEST_ID.get()
        if request_id is not None and not getattr(record, "request_logged", False):
            line += f" request_id={request_id}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the request id
    while a request is served, the access log's fields (`http`), and the exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        fields = getattr(record, "http", None)
        if isinstance(fields, dict):
            entry["http"] = fields
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exception"] = redact(record.exc_text)
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))
