"""A cap on the requests one client address (an IPv6 client's /64) has in progress at once.

The HTTP server (granian) accepts connections in native code and offers no hook per connection,
so the cap counts what the application sees: requests whose headers have arrived, until their
answer is sent. Connections that never finish their headers are the header timeout's to close.
Each worker process counts its own requests. The outermost middleware (`api.middleware`) asks
`admit` before it hands a request on and `leave` once it is answered: no layer of its own, so
an answer passes through one wrapper of `send`.
"""

from __future__ import annotations

import ipaddress

from starlette.types import Scope

from dockyard.auth.requests import client_address, client_key, plain_address
from dockyard.core.errors import ErrorCode, RegistryError


class PerClientLimit:
    def __init__(self, cap: int, trusted_proxies: list[str]) -> None:
        self.cap = cap
        self.trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]
        self.in_progress: dict[str, int] = {}

    def admit(self, scope: Scope) -> str | None:
        """The client's key, its request counted in; None when it already has `cap` requests
        in progress (answer `refusal()`)."""
        address = client_key(self._address(scope))
        count = self.in_progress.get(address, 0)
        if count >= self.cap:
            return None
        self.in_progress[address] = count + 1
        return address

    def leave(self, address: str) -> None:
        left = self.in_progress[address] - 1
        if left:
            self.in_progress[address] = left
        else:  # no entry per address ever seen: the table stays as small as the load
            del self.in_progress[address]

    @staticmethod
    def refusal() -> RegistryError:
        return RegistryError(
            ErrorCode.TOOMANYREQUESTS,
            "too many requests in progress from this address; retry when some finish",
            headers={"Retry-After": "1"},
        )

    def _address(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = client[0] if client else ""
        if not self.trusted:
            return plain_address(peer)
        forwarded = None
        for key, value in scope["headers"]:
            if key == b"x-forwarded-for":
                forwarded = value.decode("latin-1")
                break
        return client_address(peer, forwarded, self.trusted)
