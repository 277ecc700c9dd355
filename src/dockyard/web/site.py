"""What every page handler reaches: the registry, the access gate, the templates and the
session key, found through the request's scope."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from dockyard.auth.services import SERVICES_KEY
from dockyard.web import sessions

if TYPE_CHECKING:
    from jinja2 import Environment

    from dockyard.auth.setup import Auth
    from dockyard.service.registry import Registry

SITE_KEY = "dockyard.site"


@dataclass
class Site:
    """One per server process: built with the routes, before the registry is open."""

    templates: Environment
    _key: bytes | None = None
    _loading: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def key(self, registry: Registry) -> bytes:
        """The session key every replica shares, made by whichever starts first."""
        if self._key is None:
            async with self._loading:
                if self._key is None:
                    secret = await registry.meta.secret(sessions.SECRET_NAME, sessions.new_secret)
                    self._key = secret.encode()
        return self._key


def site_of(request: Request) -> Site:
    site: Site = request.scope[SITE_KEY]
    return site


def registry_of(request: Request) -> Registry:
    return request.scope[SERVICES_KEY].registry


def auth_of(request: Request) -> Auth | None:
    """The access gate and tokens; None when the registry runs without accounts."""
    return request.scope[SERVICES_KEY].auth
