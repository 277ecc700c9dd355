"""The HTTP connection to one registry host: scheme, trust, timeouts, retries, rate limits.

HTTPS first, always, with certificate verification. A loopback host, or one the caller marks
insecure (docker's insecure-registries), falls back to plain HTTP when it does not speak TLS;
for a host marked insecure the certificate is not verified either, as docker does. Private CAs
and client certificates come from `--ca-cert` files and from the certs.d folders docker and
podman read (see `trust_files`). Connection failures, and 5xx answers to idempotent
requests whose body can be sent again, are retried a bounded number of times with exponential
backoff; a 429 waits once when `Retry-After` is short, and otherwise comes back to the caller,
who turns it into `RateLimited` (see `rate_limit_error`); a 503's short `Retry-After` replaces
the backoff. Redirects are followed by httpx, which drops `Authorization` at another origin.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import random
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpcore
import httpx

from dockyard.client.errors import ClientError, ConnectionFailed, RateLimited, TransferInterrupted
from dockyard.core.reference import DOCKER_HUB, DOCKER_HUB_API

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({500, 502, 503, 504})
DEFAULT_TIMEOUT = httpx.Timeout(connect=15.0, read=120.0, write=120.0, pool=60.0)
# httpcore reads a response 64 KiB at a time. Blobs are the bulk of what a registry client
# receives; larger reads cut the CPU a large download costs (bench/README.md), and small
# answers are unaffected.
BODY_READ_BYTES = 1024 * 1024
if getattr(httpcore.AsyncHTTP11Connection, "READ_NUM_BYTES", 0) < BODY_READ_BYTES:
    httpcore.AsyncHTTP11Connection.READ_NUM_BYTES = BODY_READ_BYTES


def translate_error(exc: httpx.HTTPError, host: str) -> ClientError:
    """A message for a transport failure that tells the user what to check."""
    chain: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(chain) < 8:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(c) for c in chain)
    if (
        any(isinstance(c, ssl.SSLCertVerificationError) for c in chain)
        or "CERTIFICATE_VERIFY_FAILED" in text
    ):
        return ConnectionFailed(
            f"{host}: TLS certificate verification failed ({exc}); trust "
            "the registry's CA with --ca-cert FILE or DOCKYARD_CA_CERT=FILE, "
            f"or put it in ~/.docker/certs.d/{host}/ca.crt or "
            f"/etc/containers/certs.d/{host}/ca.crt; use --insecure only "
            "if you trust the network"
        )
    if _speaks_no_tls(chain):
        return ConnectionFailed(
            f"{host}: the registry does not speak TLS on this port; if it "
            "serves plain HTTP, use --insecure"
        )
    if isinstance(exc, httpx.ConnectError):
        return ConnectionFailed(
            f"cannot connect to {host} ({exc or type(exc).__name__}); check "
            "the host name and port and that the registry is running"
        )
    if isinstance(exc, httpx.TimeoutException):
        return ConnectionFailed(
            f"{host} did not answer in time ({type(exc).__name__}); try again later"
        )
    if isinstance(exc, httpx.TransportError):
        return TransferInterrupted(
            f"the connection to {host} broke ({exc or type(exc).__name__}); try again"
        )
    return ClientError(f"{host}: {exc}")


# Seconds the TLS attempt may take on a host that may also answer plain HTTP.
PROBE_SECONDS = 3.0
# What OpenSSL says when a ClientHello reaches a server that does not speak TLS.
NO_TLS_SIGNS = (
    "wrong version number",
    "record layer failure",
    "packet length too long",
    "unexpected eof",
    "eof occurred",
)


def _speaks_no_tls(chain: Sequence[BaseException]) -> bool:
    """The TLS handshake failed for want of TLS on the other side (a plain HTTP server answers
    a ClientHello with an HTTP error, or hangs up), not because of the certificate."""
    if any(isinstance(c, ssl.SSLCertVerificationError) for c in chain):
        return False
    text = " ".join(str(c) for c in chain).lower()
    return any(sign in text for sign in NO_TLS_SIGNS)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 4  # tries in all, the first included
    backoff: float = 0.5  # seconds before the second try; doubles each time
    max_backoff: float = 8.0
    # A Retry-After of at most this many seconds is waited out: on 429 once, on 503 within
    # `attempts` (instead of the backoff); a longer one comes back to the caller at once.
    # 0 keeps the plain backoff on 503 and never waits on 429.
    rate_limit_wait: float = 0.0

    def delay(self, attempt: int) -> float:
        """Backoff before try `attempt + 1` (attempt counts from 1), with jitter."""
        base = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)


def api_host(host: str) -> str:
    """Where a registry's API is served: Docker Hub's lives at registry-1.docker.io."""
    return DOCKER_HUB_API if host in (DOCKER_HUB, "index.docker.io") else host


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    name = _hostname(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_marked_insecure(host: str, insecure_hosts: Iterable[str] = ()) -> bool:
    marked = set(insecure_hosts)
    return host in marked or _hostname(host) in marked


def uses_plain_http(host: str, insecure_hosts: Iterable[str] = ()) -> bool:
    """Plain HTTP may be used (after HTTPS was tried) for loopback and for hosts marked
    insecure, by `host:port` or bare name."""
    return is_loopback(host) or is_marked_insecure(host, insecure_hosts)


def base_url(host: str, insecure_hosts: Iterable[str] = ()) -> str:
    """HTTPS always: `SchemeProbe` moves a host allowed plain HTTP there when it must."""
    return f"https://{api_host(host)}"


def certs_dirs() -> list[Path]:
    """The per-registry certificate folders docker and podman read, most personal first."""
    home = Path.home()
    return [
        home / ".docker" / "certs.d",
        home / ".config" / "containers" / "certs.d",
        Path("/etc/docker/certs.d"),
        Path("/etc/containers/certs.d"),
    ]


def trust_files(host: str) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """CA certificates (`*.crt`) and client certificate pairs (`NAME.cert` with `NAME.key`)
    kept for `host` (as `host:port`) in the certs.d folders, as docker lays them out."""
    cas: list[Path] = []
    pairs: list[tuple[Path, Path]] = []
    for root in certs_dirs():
        folder = root / host
        try:
            names = sorted(folder.iterdir()) if folder.is_dir() else []
        except OSError:
            continue
        for path in names:
            if path.suffix == ".crt":
                cas.append(path)
            elif path.suffix == ".cert" and path.with_suffix(".key").is_file():
                pairs.append((path, path.with_suffix(".key")))
    return cas, pairs


def ssl_context(
    host: str,
    *,
    ca_certs: Iterable[str | Path] = (),
    verify: bool | str = True,
) -> ssl.SSLContext:
    """The TLS settings for `host`: the system's trust (or SSL_CERT_FILE) plus the given CA
    files and the host's certs.d folders; the client certificate found there, for mTLS.
    `verify=False` checks no certificate (hosts marked insecure)."""
    if isinstance(verify, str):
        ctx = ssl.create_default_context(cafile=verify)
    else:
        ctx = httpx.create_ssl_context(verify=verify)
    cas, pairs = trust_files(host)
    for path in [*map(Path, ca_certs), *cas]:
        if not verify:
            break
        try:
            ctx.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            raise ClientError(
                f"cannot use the CA certificate {path}: {reason} (expected a "
                "PEM file with one or more certificates)"
            ) from None
    for cert, key in pairs[:1]:
        try:
            ctx.load_cert_chain(str(cert), str(key))
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or exc
            raise ClientError(
                f"cannot use the client certificate {cert} with {key}: {reason}"
            ) from None
    return ctx


class SchemeProbe(httpx.AsyncBaseTransport):
    """HTTPS first; plain HTTP for the registry's own host when it is allowed (loopback,
    marked insecure) and the host turns out not to speak TLS, as docker does. The first
    request that gets an answer decides, once; `scheme` says which one it was. A `scheme`
    given up front (a URL the user wrote out) is used as it is."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, host: str, plain_ok: bool, scheme: str | None = None
    ) -> None:
        self.inner = inner
        self.authority = httpx.URL(f"https://{host}")
        self.scheme: str | None = scheme or (None if plain_ok else "https")
        self._lock = asyncio.Lock()

    def _ours(self, url: httpx.URL) -> bool:
        return (
            url.scheme == "https"
            and url.host == self.authority.host
            and url.port == self.authority.port
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self._ours(request.url):
            return await self.inner.handle_async_request(request)
        if self.scheme is None:
            async with self._lock:
                if self.scheme is None:
                    return await self._probe(request)
        if self.scheme == "http":
            request.url = request.url.copy_with(scheme="http")
        return await self.inner.handle_async_request(request)

    async def _probe(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        # A server that waits for a request line the ClientHello never completes must not
        # cost the whole connect timeout: the handshake gets a short one.
        request.extensions["timeout"] = {
            **timeouts,
            "connect": min(timeouts.get("connect") or PROBE_SECONDS, PROBE_SECONDS),
        }
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.ConnectTimeout:
            pass
        except httpx.ConnectError as exc:
            chain: list[BaseException] = []
            cause: BaseException | None = exc
            while cause is not None and len(chain) < 8:
                chain.append(cause)
                cause = cause.__cause__ or cause.__context__
            if not _speaks_no_tls(chain):
                raise
        else:
            self.scheme = "https"
            return response
        finally:
            request.extensions["timeout"] = timeouts
        # Only an answer over plain HTTP settles it: a host that did not answer at all is
        # probed again next time rather than held to plain HTTP.
        request.url = request.url.copy_with(scheme="http")
        response = await self.inner.handle_async_request(request)
        self.scheme = "http"
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


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
    when = (
        f"try again in {retry_after:.0f} seconds" if retry_after is not None else "try again later"
    )
    hint = " or log in for a higher limit" if host in (DOCKER_HUB_API, DOCKER_HUB) else ""
    return RateLimited(
        f"{host}: too many requests, the registry is rate-limiting this client"
        f"{shown}; {when}{hint}",
        retry_after,
    )


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
            except (
                httpx.ReadError,
                httpx.RemoteProtocolError,
                httpx.WriteError,
                httpx.ReadTimeout,
            ):
                if not (can_retry and request.method in IDEMPOTENT):
                    raise
            else:
                if (
                    response.status_code == 429
                    and _replayable(request)
                    and not waited_for_rate_limit
                    and self.policy.rate_limit_wait > 0
                ):
                    wait = parse_retry_after(response.headers.get("Retry-After"))
                    if wait is not None and wait <= self.policy.rate_limit_wait:
                        await response.aclose()
                        waited_for_rate_limit = True
                        await asyncio.sleep(wait)
                        continue
                if not (
                    response.status_code in RETRY_STATUSES
                    and can_retry
                    and request.method in IDEMPOTENT
                ):
                    return response
                told = self._told_to_wait(response)
                if told is not None and told > self.policy.rate_limit_wait:
                    return response  # asking sooner than the registry said would not help
                await response.aclose()
                if told is not None:
                    await asyncio.sleep(told)
                    attempt += 1
                    continue
            await asyncio.sleep(self.policy.delay(attempt))
            attempt += 1

    def _told_to_wait(self, response: httpx.Response) -> float | None:
        """The Retry-After of a 503, when this policy honours it."""
        if response.status_code != 503 or self.policy.rate_limit_wait <= 0:
            return None
        return parse_retry_after(response.headers.get("Retry-After"))

    async def aclose(self) -> None:
        await self.inner.aclose()


class RegistryHTTP(httpx.AsyncClient):
    """An AsyncClient that knows which scheme its registry host answered on."""

    probe: SchemeProbe

    @property
    def scheme(self) -> str | None:
        """ "https" or "http" once the first request went out, else None."""
        return self.probe.scheme


def build_client(
    host: str,
    *,
    insecure_hosts: Iterable[str] = (),
    auth: httpx.Auth | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    retry: RetryPolicy | None = None,
    verify: bool | str = True,
    ca_certs: Iterable[str | Path] = (),
    scheme: str | None = None,
    user_agent: str = "dockyard",
) -> RegistryHTTP:
    """An AsyncClient rooted at `host`'s API URL, with the policy above built in. `scheme`
    ("https" or "http") skips the probe, for a URL that names it."""
    host = api_host(host)
    insecure = is_marked_insecure(host, insecure_hosts)
    tls = ssl_context(host, ca_certs=ca_certs, verify=False if insecure else verify)
    probe = SchemeProbe(
        httpx.AsyncHTTPTransport(verify=tls, http1=True),
        host,
        uses_plain_http(host, insecure_hosts),
        scheme,
    )
    transport = RetryingTransport(probe, retry or RetryPolicy())
    client = RegistryHTTP(
        base_url=base_url(host),
        auth=auth,
        timeout=timeout,
        transport=transport,
        headers={"User-Agent": user_agent},
        follow_redirects=False,
    )
    client.probe = probe
    return client
