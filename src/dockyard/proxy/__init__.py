"""The pull-through cache: repositories served from an upstream registry and kept here.

`ProxyService.repository` wraps a local repository in a `ProxiedRepository` when the cache
stands in for its name; the route handlers only ever see the repository interface
(`dockyard.service.repository`). This package may use the client (`dockyard.client`) to reach
upstreams; `dockyard.service` never does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dockyard.proxy.service import ProxyService
    from dockyard.service.registry import Registry


def cache_of(registry: Registry) -> ProxyService | None:
    """The registry's pull-through cache, as the access rules need to see it (its upstreams
    and mirror); None when none is configured. Importing this package costs nothing: the
    cache's HTTP client comes in only with a configured cache."""
    if registry.proxy is None:
        return None
    from dockyard.proxy.service import ProxyService

    assert isinstance(registry.proxy, ProxyService), "the one kind of stand-in there is"
    return registry.proxy
