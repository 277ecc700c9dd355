"""What the handlers of the API and of the web pages reach through every request's scope: the
registry and, with accounts on, the access machinery. Put there by the outer middleware, read
with one dict lookup: Starlette's `request.app.state.x` is slower, and handlers read it on every
request (bench/README.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.auth.setup import Auth
    from dockyard.service.registry import Registry

SERVICES_KEY = "dockyard.services"


@dataclass(slots=True)
class Services:
    registry: Registry = None  # type: ignore[assignment]  # set by the lifespan
    auth: Auth | None = None
