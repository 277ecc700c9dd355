"""The log formats: what `redact` cuts out of a line and what it leaves, the JSON line's fields,
and the request id on a request's lines in both formats."""

from __future__ import annotations

import json
import logging
import sys

from dockyard.core.logs import REQUEST_ID, JsonFormatter, TextFormatter, redact

SIGNED = (
    "https://s3.example/bucket/blobs/ab?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIDEXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
    "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=600&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=0123456789abcdef0123456789abcdef"
)


def test_signatures_credentials_and_headers_are_cut() -> None:
    line = redact(f'HTTP Request: GET {SIGNED} "HTTP/1.1 200 OK"')
    assert "0123456789abcdef" not in line and "AKIDEXAMPLE" not in line
    assert "X-Amz-Signature=REDACTED" in line and "X-Amz-Expires=600" in line
    assert line.endswith('"HTTP/1.1 200 OK"')
    assert redact("upstream https://bob:hunter22@up.example/v2/") == (
        "upstream https://REDACTED@up.example/v2/"
    )
    assert "Basic" not in redact("headers {'authorization': 'Basic YWxpY2U6cHc='}")
    assert "s3cr3t" not in redact("Cookie: dockyard_session=s3cr3t")
    assert redact("GET /v2/?access_token=tok&n=1") == "GET /v2/?access_token=REDACTED&n=1"


def test_ordinary_lines_are_left_alone() -> None:
    for line in (
        '127.0.0.1 "PUT /v2/a/b/blobs/uploads/x?digest=sha256:00ff" 201 0 1.0ms',
        "gc: 3 blob(s), 1024 bytes, 2 link(s), 0 manifest(s), 0 stray(s) reclaimed",
        "deleted repository a/b: 1 tags, 2 manifests, 3 blob links, 0 uploads",
        "user@example.com signed in",  # no scheme: not a URL's credentials
    ):
        assert redact(line) == line


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise RuntimeError(f"fetching {SIGNED} failed")
        except RuntimeError:
            info = sys.exc_info()
    return logging.LogRecord("dockyard.proxy", logging.WARNING, "", 0, message, args, info)


def test_a_json_line_has_its_fields_and_the_request_id() -> None:
    formatter = JsonFormatter()
    outside = json.loads(formatter.format(_record("plain %s", "line")))
    assert outside["message"] == "plain line" and "request_id" not in outside
    assert outside["level"] == "WARNING" and outside["logger"] == "dockyard.proxy"
    token = REQUEST_ID.set("abc123")
    try:
        inside = json.loads(formatter.format(_record("fetching %s", SIGNED, exc=True)))
        text = TextFormatter().format(_record("fetching %s", SIGNED))
    finally:
        REQUEST_ID.reset(token)
    assert inside["request_id"] == "abc123"
    assert "0123456789abcdef" not in json.dumps(inside)
    assert "RuntimeError" in inside["exception"]
    assert text.endswith(" request_id=abc123") and "0123456789abcdef" not in text
