"""Which id a request is logged under: the one a trusted proxy gave it in `X-Request-ID`, so
the proxy's lines and ours can be joined, or a new one. A client's own header is never taken:
it could make its requests look like someone else's."""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import secrets

from dockyard.auth.requests import plain_address

HEADER = b"x-request-id"
# Bounded and plain: the id is written into every log line and sent back as a header.
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:@+/=-]{1,128}")

Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]


# A new id is this process's random prefix and a count: unique across processes and restarts
# without asking the kernel for randomness on every request. Nothing relies on it being secret.
# Workers are forked from a parent that may have imported this module: each draws its own.
_PREFIX = secrets.token_hex(4)
_COUNT = itertools.count(1)


def _new_prefix() -> None:
    global _PREFIX, _COUNT
    _PREFIX = secrets.token_hex(4)
    _COUNT = itertools.count(1)


os.register_at_fork(after_in_child=_new_prefix)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNT) & 0xFFFFFFFF:08x}"


def request_id_of(peer: str, headers: list[tuple[bytes, bytes]], trusted: Networks) -> str:
    """The proxy's id when the peer is a trusted proxy and sent a well-formed one, else a new
    id."""
    if trusted:
        for name, value in headers:
            if name == HEADER:
                if _WELL_FORMED.fullmatch(value) and _is_trusted(peer, trusted):
                    return value.decode("ascii")
                break
    return new_request_id()


def _is_trusted(peer: str, trusted: Networks) -> bool:
    try:
        address = ipaddress.ip_address(plain_address(peer))
    except ValueError:
        return False
    return any(address in network for network in trusted)
