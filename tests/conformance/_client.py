"""HTTP helpers shared by the conformance tests (plain httpx, no registry client library)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from tests.conformance._content import SPEC_ERROR_CODES, Blob, Manifest

OCTET = {"Content-Type": "application/octet-stream"}
OK_2XX = range(200, 300)


def location(resp: httpx.Response) -> str:
    """The Location header as a path plus query, whether the registry sent it absolute or not."""
    loc = resp.headers.get("Location", "")
    if not loc:
        return ""
    parts = urlsplit(loc)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_query(url: str, **params: str) -> str:
    """Add query parameters to an upload URL, keeping any the registry put there itself."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return parts.path + ("?" + urlencode(query) if query else "")


def start_upload(client: httpx.Client, repo: str, **params: str) -> httpx.Response:
    return client.post(
        f"/v2/{repo}/blobs/uploads/", params=params or None, headers={"Content-Length": "0"}
    )


def push_blob(client: httpx.Client, repo: str, blob: Blob) -> httpx.Response:
    """POST for a session, then one PUT with the whole blob; returns the PUT response."""
    started = start_upload(client, repo)
    target = location(started) or f"/v2/{repo}/blobs/uploads/missing-location"
    return client.put(with_query(target, digest=blob.digest), content=blob.content, headers=OCTET)


def push_manifest(
    client: httpx.Client, repo: str, reference: str, manifest: Manifest
) -> httpx.Response:
    return client.put(
        f"/v2/{repo}/manifests/{reference}",
        content=manifest.content,
        headers={"Content-Type": manifest.media_type},
    )


def tags_of(resp: httpx.Response) -> list[str]:
    """The tags of a tag-list response; an unparsable body counts as no tags."""
    try:
        tags = resp.json().get("tags")
    except (ValueError, AttributeError):
        return []
    return list(tags or [])


def error_codes(resp: httpx.Response) -> list[str]:
    """Check the body is a spec error document and return its codes in order."""
    try:
        body: Any = resp.json()
    except json.JSONDecodeError as exc:
        raise AssertionError(
            f"{resp.status_code} error body is not JSON: {resp.text[:200]!r}"
        ) from exc
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    errors = body.get("errors")
    assert isinstance(errors, list) and errors, f"error body lacks a non-empty errors list: {body}"
    codes = []
    for err in errors:
        assert isinstance(err, dict), f"error entry is not an object: {err!r}"
        code = err.get("code")
        assert isinstance(code, str) and re.fullmatch(r"[A-Z_]+", code), f"bad code {code!r}"
        assert code in SPEC_ERROR_CODES, f"{code} is not an error code the spec defines"
        if "message" in err:
            assert isinstance(err["message"], str), f"message is not a string: {err!r}"
        codes.append(code)
    return codes


def assert_error(
    resp: httpx.Response, statuses: int | tuple[int, ...], codes: str | tuple[str, ...]
) -> None:
    """The response has one of ``statuses`` and a JSON error body whose first code is expected."""
    statuses = (statuses,) if isinstance(statuses, int) else statuses
    codes = (codes,) if isinstance(codes, str) else codes
    assert resp.status_code in statuses, (
        f"{resp.request.method} {resp.request.url.raw_path.decode()}: expected {statuses}, "
        f"got {resp.status_code} {resp.text[:300]!r}"
    )
    found = error_codes(resp)
    assert found[0] in codes, f"expected error code in {codes}, got {found}"


def describe(resp: httpx.Response) -> str:
    """One line for assertion messages."""
    return (
        f"{resp.request.method} {resp.request.url.raw_path.decode()} -> "
        f"{resp.status_code} {dict(resp.headers)} {resp.text[:300]!r}"
    )


def link_next(resp: httpx.Response) -> str | None:
    """The target of a ``rel="next"`` Link header, as a path plus query, or None."""
    header = resp.headers.get("Link")
    if not header:
        return None
    for part in header.split(","):
        match = re.match(r"\s*<([^>]*)>\s*;(.*)$", part)
        if match and re.search(r'rel\s*=\s*"?next"?', match.group(2)):
            parts = urlsplit(match.group(1))
            return parts.path + (f"?{parts.query}" if parts.query else "")
    return None
