"""The HTTP connection to one registry host: scheme, timeouts, retries, rate limits.

HTTPS with certificate verification unless the host is loopback or the caller marks it
insecure (docker's insecure-registries). Connection failures, and 5xx answers to idempotent
requests whose body can be sent again, are retried a bounded number of times with exponential
backoff; a 429 waits once when `Retry-After` is short, and otherwise comes back to the caller,
who turns it into `RateLimited` (see `rate_limit_error`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import random
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import httpcore
import httpx

from dockyard.client.image import ClientError
from dockyard.core.reference import DOCKER_HUB, DOCKER_HUB_API

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({500, 502, 503, 504})
DEFAULT_TIMEOUT = httpx.Timeout(connect=15.0, read=120.0, write=120.0, pool=60.0)
# httpcore reads a response 64 KiB at a time. Blobs are the bulk of what a registry client
# receives; reading up to 1 MiB at once halved the CPU a 256 MiB download cost here
# (1.04 -> 0.53 ns a byte, uvloop, loopback), and small answers are unaffected.
BODY_READ_BYTES = 1024 * 1024
if getattr(httpcore.AsyncHTTP11Connection, "READ_NUM_BYTES", 0) < BODY_READ_BYTES:
    httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = BODY_READ_BYTES


class RateLimited(ClientError):
    """The registry answered 429 Too Many Requests."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, "TOOMANYREQUESTS")
        self.retry_after = retry_after


class ConnectionFailed(ClientError):
    """The registry could not be reached, or the connection broke."""


class TransferInterrupted(ConnectionFailed):
    """The connection broke in the middle of a request or response body (resumable)."""


def translate_error(exc: httpx.HTTPError, host: str) -> ClientError:
    """A message for a transport failure that tells the user what to check."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(c) for c in chain)
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in chain) or \
            "CERTIFICATE_VERIFY_FAILED" in text:
        return ConnectionFailed(f"{host}: TLS certificate verification failed ({exc}); install "
                                "the registry's CA certificate, or use --insecure only if you "
                                "trust the network")
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return ConnectionFailed(f"{host}: the registry does not speak TLS on this port; if it "
                                "serves plain HTTP, use --insecure")
    if isinstance(exc, httpx.ConnectError):
        return ConnectionFailed(f"cannot connect to {host} ({exc or type(exc).__name__}); check "
                                "the host name and port and that the registry is running")
    if isinstance(exc, httpx.TimeoutException):
        return ConnectionFailed(f"{host} did not answer in time ({type(exc).__name__}); try "
                                "again later")
    if isinstance(exc, httpx.TransportError):
        return TransferInterrupted(f"the connection to {host} broke "
                                   f"({exc or type(exc).__name__}); try again")
    return ClientError(f"{host}: {exc}")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4          # tries in all, the first included
    backoff: float = 0.5       # seconds before the second try; doubles each time
    max_backoff: float = 8.0
    rate_limit_wait: float = 0.0  # wait once on 429 when Retry-After is at most this

    def delay(self, attempt: int) -> float:
        """Backoff before try `attempt + 1` (attempt counts from 1), with jitter."""
        base = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)


def api_host(host: str) -> str:
    """Where a registry's API is served: Docker Hub's lives at registry-1.docker.io."""
    return DOCKER_HUB_API if host in (DOCKER_HUB, "index.docker.io") else host


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    name = _hostname(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def uses_plain_http(host: str, insecure_hosts: Iterable[str] = ()) -> bool:
    """Plain HTTP for loopback and for hosts marked insecure (by `host:port` or bare name)."""
    if is_loopback(host):
        return True
    marked = set(insecure_hosts)
    return host in marked or _hostname(host) in marked


def base_url(host: str, insecure_hosts: Iterable[str] = ()) -> str:
    host = api_host(host)
    return f"{'http' if uses_plain_http(host, insecure_hosts) else 'https'}://{host}"


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def rate_limit_error(response: httpx.Response, host: str) -> RateLimited:
    """A message that shows what the registry said about its limits and when to come back."""
    headers = response.headers
    retry_after = parse_retry_after(headers.get("Retry-After"))
    parts = []
    if headers.get("Retry-After"):
        parts.append(f"Retry-After: {headers['Retry-After']}")
    for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"):
        if headers.get(name):
            parts.append(f"{name}: {headers[name]}")
    shown = f" ({'; '.join(parts)})" if parts else ""
    when = (f"try again in {retry_after:.0f} seconds" if retry_after is not None
            else "try again later")
    hint = " or log in for a higher limit" if host in (DOCKER_HUB_API, DOCKER_HUB) else ""
    return RateLimited(f"{host}: too many requests, the registry is rate-limiting this client"
                       f"{shown}; {when}{hint}", retry_after)


class RetryingTransport(httpx.AsyncBaseTransport):
    """Bounded retries with backoff around a real transport; never resends a one-shot stream."""

    def __init__(self, inner: httpx.AsyncBaseTransport, policy: RetryPolicy) -> None:
        self.inner = inner
        self.policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 1
        waited_for_rate_limit = False
        while True:
            can_retry = attempt < self.policy.attempts and _replayable(request)
            try:
                response = await self.inner.handle_async_request(request)
            except httpx.ConnectError:
                # Nothing reached the server: safe to retry whatever the method.
                if not can_retry:
                    raise
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError,
                    httpx.ReadTimeout):
                if not (can_retry and request.method in IDEMPOTENT):
                    raise
            else:
                if response.status_code == 429 and _replayable(request) and \
                        not waited_for_rate_limit and self.policy.rate_limit_wait > 0:
                    wait = parse_retry_after(response.headers.get("Retry-After"))
                    if wait is not None and wait <= self.policy.rate_limit_wait:
                        await response.aclose()
                        waited_for_rate_limit = True
                        await asyncio.sleep(wait)
                        continue
                if not (response.status_code in RETRY_STATUSES and can_retry
                        and request.method in IDEMPOTENT):
                    return response
                await response.aclose()
            await asyncio.sleep(self.policy.delay(attempt))
            attempt += 1

    async def aclose(self) -> None:
        await self.inner.aclose()


def build_client(host: str, *, insecure_hosts: Iterable[str] = (),
                 auth: httpx.Auth | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                 retry: RetryPolicy | None = None, verify: bool | str = True,
                 user_agent: str = "dockyard") -> httpx.AsyncClient:
    """An AsyncClient rooted at `host`'s API URL, with the policy above built in."""
    url = base_url(host, insecure_hosts)
    inner = httpx.AsyncHTTPTransport(verify=verify, http1=True)
    transport = RetryingTransport(inner, retry or RetryPolicy())
    return httpx.AsyncClient(base_url=url, auth=auth, timeout=timeout, transport=transport,
                             headers={"User-Agent": user_agent}, follow_redirects=False)
