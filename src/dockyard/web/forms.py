"""Reading a posted form: URL-encoded, bounded in size and time, and refused unless it carries
the CSRF token of the viewer's own session and comes from a page of this site."""

from __future__ import annotations

import asyncio
import hmac
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request

from dockyard.auth.origin import same_origin
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.web.viewer import Viewer

MAX_FORM_BYTES = 64 * 1024
CSRF_FIELD = "csrf"


async def _body(request: Request, timeout: float, limit: int) -> bytes:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise RegistryError(ErrorCode.MEDIA_TYPE_UNSUPPORTED, "send the page's form")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise RegistryError(ErrorCode.BODY_TOO_LARGE, "form too large")
                chunks.append(chunk)
    except TimeoutError:
        raise RegistryError(ErrorCode.BODY_TIMEOUT, "the form did not arrive in time") from None
    except ClientDisconnect:
        raise RegistryError(ErrorCode.BAD_REQUEST, "the form did not arrive whole") from None
    return b"".join(chunks)


async def posted_form(
    request: Request, viewer: Viewer, timeout: float, limit: int = MAX_FORM_BYTES
) -> dict[str, str]:
    """The form's fields (the first of each name), once its origin and CSRF token hold;
    `limit`: the most bytes the form may take (a README's is larger than most)."""
    if not same_origin(request):
        raise RegistryError(ErrorCode.DENIED, "forms from other sites are refused")
    raw = await _body(request, timeout, limit)
    fields: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, value)
    token = fields.get(CSRF_FIELD, "")
    # A viewer whose session is new has no form of it yet: whatever token came is another's.
    if (
        not token
        or viewer.fresh_cookie is not None
        or not hmac.compare_digest(token.encode(), viewer.csrf.encode())
    ):
        raise RegistryError(
            ErrorCode.DENIED, "this form expired or came from another page; load it again"
        )
    return fields
