"""Pure-ASGI middleware counting this worker's requests in progress (`service.activity`), so
the garbage collector rests between its batches only while the worker has requests to serve."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from dockyard.service.activity import Activity


class CountsRequests:
    def __init__(self, app: ASGIApp, activity: Activity) -> None:
        self.app = app
        self.activity = activity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        activity = self.activity
        activity.started += 1
        activity.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            activity.in_progress -= 1
