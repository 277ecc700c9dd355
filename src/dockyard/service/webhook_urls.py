"""Which webhook URLs the registry may call: http(s) only, and not its own loopback or
link-local addresses (where it, or a cloud's metadata service, answers) unless the settings
allow them. Checked when a webhook is added and again before every delivery, since what a name
resolves to can change between the two."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from dockyard.core.errors import ErrorCode, RegistryError

REFUSED_NETWORKS = [
    ipaddress.ip_network(n)
    for n in ("127.0.0.0/8", "169.254.0.0/16", "0.0.0.0/32", "::1/128", "fe80::/10", "::/128")
]


def parsed(url: str) -> tuple[str, int]:
    """The host and port of a webhook URL; a BAD_REQUEST error if it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise RegistryError(ErrorCode.BAD_REQUEST, f"not a URL: {e}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(ErrorCode.BAD_REQUEST, "a webhook URL is http:// or https://HOST/…")
    if len(url) > 2000:
        raise RegistryError(ErrorCode.BAD_REQUEST, "a webhook URL is at most 2000 characters")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in REFUSED_NETWORKS if network.version == ip.version)


async def refusal(url: str, allow_loopback: bool, *, unresolved_ok: bool = False) -> str | None:
    """Why the registry must not call `url` now, or None when it may. A name that does not
    resolve is a reason at delivery; at creation (`unresolved_ok`) it may be a passing DNS
    failure, and every delivery checks again anyway."""
    host, port = parsed(url)
    if allow_loopback:
        return None
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        return None if unresolved_ok else f"{host} does not resolve: {e}"
    for *_, sockaddr in found:
        if refused(str(sockaddr[0])):
            return (
                f"{host} resolves to {sockaddr[0]}, a loopback or link-local address "
                "(set webhook_allow_loopback to allow it)"
            )
    return None
