"""Responses for blob bytes: zero-copy `pathsend` where the server offers it, else streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from starlette.types import Receive, Scope, Send


class BlobResponse:
    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        *,
        path: Path | None = None,
        stream: Callable[[], AsyncIterator[bytes]] | None = None,
        head: bool = False,
    ) -> None:
        self.status = status
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.path = path
        self.stream = stream
        self.head = head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        if self.head:
            await send({"type": "http.response.body", "body": b""})
            return
        if self.path is not None and "http.response.pathsend" in scope.get("extensions", {}):
            await send({"type": "http.response.pathsend", "path": str(self.path)})
            return
        assert self.stream is not None, "a blob response needs a stream when pathsend is absent"
        async for chunk in self.stream():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
