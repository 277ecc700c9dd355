"""The upstream registries of the pull-through cache: a client for each, its backoff after a
failure, and what a client is told when an upstream cannot help."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from dockyard.client.credentials import Credentials
from dockyard.client.errors import ConnectionFailed, RateLimited, Unauthorized
from dockyard.client.registry import RegistryClient
from dockyard.config import Upstream
from dockyard.core.errors import ErrorCode, RegistryError

# How long to leave an upstream alone after it failed without saying when to come back.
FAILURE_BACKOFF_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Route:
    """A cached repository: `local` is its name here, `remote` its name upstream."""

    upstream: UpstreamRegistry
    local: str
    remote: str


class UpstreamRegistry:
    def __init__(self, config: Upstream) -> None:
        self.config = config
        self.name = config.name
        self._client: RegistryClient | None = None
        self.backoff_until = 0.0
        self.last_error: Exception | None = None

    @property
    def client(self) -> RegistryClient:
        # Created on first use, inside the worker's event loop.
        if self._client is None:
            scheme, host = self.config.url.split("://", 1)
            scheme = scheme.lower()
            credentials = None
            if self.config.username:
                credentials = Credentials(self.config.username, self.config.password or "")
            self._client = RegistryClient(
                host,
                credentials=credentials,
                insecure=scheme == "http",
                timeout=httpx.Timeout(self.config.timeout_seconds),
                # The configured URL names the scheme: an upstream is never probed.
                scheme=scheme,
            )
        return self._client

    def available(self) -> bool:
        return time.time() >= self.backoff_until

    def failed(self, exc: Exception) -> None:
        self.last_error = exc
        wait = exc.retry_after if isinstance(exc, RateLimited) else None
        self.backoff_until = time.time() + (wait if wait is not None else FAILURE_BACKOFF_SECONDS)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def upstream_error(route: Route, exc: Exception, wanted: str = "") -> RegistryError:
    """What a client is told when nothing is cached and the upstream cannot help. `wanted`
    (`:tag` or `@digest`) names what it lacks: having other tags cached is no answer."""
    if isinstance(exc, RateLimited):
        retry = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else {}
        return RegistryError(
            ErrorCode.TOOMANYREQUESTS,
            f"{route.upstream.name} is rate-limiting this cache and it holds "
            f"no copy of {route.local}{wanted}; try again later",
            headers=retry,
        )
    if isinstance(exc, Unauthorized):
        # It was reached and it refused: point at the configuration, not at the network.
        what = (
            f"{route.upstream.name} refused the credentials configured for it (the username "
            "and password of its `proxies` entry)"
            if route.upstream.config.username
            else f"{route.upstream.name} requires credentials (set the username and password "
            "of its `proxies` entry)"
        )
    elif isinstance(exc, ConnectionFailed | RuntimeError):
        what = f"{route.upstream.name} cannot be reached"
    else:
        what = f"{route.upstream.name} failed"
    return RegistryError(
        ErrorCode.UNAVAILABLE,
        f"{what} and this cache holds no copy of {route.local}{wanted}: {exc}",
    )
