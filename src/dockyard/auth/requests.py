"""What the HTTP layer needs to ask for access: the need, the caller, the client's address.

Kept apart from the gate so that a registry without accounts never loads the token code
(PyJWT and cryptography, about 20 MiB a process).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.auth.tokens import TokenClaims
    from dockyard.service.accounts import Principal


@dataclass(frozen=True, slots=True)
class Need:
    """What a request needs: nothing but a session (`/v2/`), the catalog, or repository actions."""

    kind: str  # "base", "catalog" or "repository"
    repository: str | None = None
    actions: frozenset[str] = frozenset()

    @property
    def scope(self) -> str | None:
        if self.kind == "catalog":
            return "registry:catalog:*"
        if self.kind == "repository":
            return f"repository:{self.repository}:{','.join(sorted(self.actions))}"
        return None


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    claims: TokenClaims | None  # set when a bearer token was presented
    address: str


def plain_address(address: str) -> str:
    """An IPv4 client of a dual-stack socket by its IPv4 address (`::ffff:192.0.2.1` is
    192.0.2.1): else all IPv4 clients would share the IPv6 /64 `::ffff:0:0/96` lies in, and
    a trusted IPv4 proxy would not be recognised."""
    if ":" not in address:
        return address
    try:
        mapped = ipaddress.IPv6Address(address).ipv4_mapped
    except ValueError:
        return address
    return str(mapped) if mapped is not None else address


def client_key(address: str) -> str:
    """The client an address stands for, where clients are counted: an IPv6 address's /64,
    which one machine or site owns whole (and picks new addresses in at will), else the
    address itself."""
    if ":" not in address:
        return address
    try:
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    except ValueError:
        return address


def client_address(
    peer: str,
    forwarded_for: str | None,
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The peer's address, or X-Forwarded-For's nearest untrusted hop when the peer is a
    trusted proxy (anything else could be forged by the client)."""
    peer = plain_address(peer)

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if not forwarded_for or not is_trusted(peer):
        return peer
    hops = [plain_address(hop.strip()) for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return hops[0] if hops else peer


def decode_basic(credentials: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return "", ""
    username, _, password = decoded.partition(":")
    return username, password
