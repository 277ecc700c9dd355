"""Whether an upstream may be asked now, as any worker or replica last learnt it.

A failure starts a backoff (the upstream's Retry-After, or a few seconds), shared through the
counters so that every worker and replica leaves the upstream alone meanwhile; within it,
clients get the error it last gave, with the time left, or a cached copy marked stale.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from dockyard.client.errors import ConnectionFailed, RateLimited
from dockyard.metadata.counters import Counters
from dockyard.proxy.upstream import Route, upstream_error

if TYPE_CHECKING:
    from dockyard.metadata.base import ManifestRecord

STALE_WARNING = '110 dockyard "Response is stale: the upstream could not be reached"'


class UpstreamHealth:
    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        # Told the upstream's name at every failure (the server's metrics).
        self.on_failure: Callable[[str], None] | None = None

    def stale(
        self,
        route: Route,
        record: ManifestRecord | None,
        exc: Exception | None = None,
        wanted: str = "",
    ) -> tuple[ManifestRecord, str | None]:
        """A cached record served stale, with the Warning header to add; without one, the
        error the client gets (with the time left before the upstream is asked again)."""
        if record is None:
            cause = exc or route.upstream.last_error or RuntimeError("unavailable")
            error = upstream_error(route, cause, wanted)
            wait = route.upstream.backoff_until - time.time()
            if wait > 0:
                error.headers.setdefault("Retry-After", str(max(1, int(wait))))
            raise error
        return record, STALE_WARNING

    async def check(self, route: Route, wanted: str = "") -> None:
        """Within the upstream's Retry-After (or the backoff after a failure) it is not asked:
        the client gets the error it last gave, with the time left."""
        if not await self.available(route):
            self.stale(route, None, wanted=wanted)

    async def available(self, route: Route) -> bool:
        """Whether the upstream may be asked now, as any worker or replica last learnt it."""
        upstream = route.upstream
        if not upstream.available():
            return False
        backoff, limited = f"proxy-backoff:{upstream.name}", f"proxy-limited:{upstream.name}"
        marks = await self.counters.touched([backoff, limited])
        until = marks.get(backoff, 0.0)
        if until > upstream.backoff_until:
            upstream.backoff_until = until
            if marks.get(limited, 0.0) >= until:
                upstream.last_error = RateLimited(
                    f"{upstream.name} is rate-limiting", until - time.time()
                )
            elif upstream.last_error is None:
                upstream.last_error = ConnectionFailed(f"{upstream.name} failed just now")
        return upstream.available()

    async def failed(self, route: Route, exc: Exception) -> None:
        """Remember the failure here and for every other worker and replica."""
        upstream = route.upstream
        upstream.failed(exc)
        if self.on_failure is not None:
            self.on_failure(upstream.name)
        await self.counters.touch(f"proxy-backoff:{upstream.name}", upstream.backoff_until)
        if isinstance(exc, RateLimited):
            await self.counters.touch(f"proxy-limited:{upstream.name}", upstream.backoff_until)
