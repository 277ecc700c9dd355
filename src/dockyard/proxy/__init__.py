"""The pull-through cache: repositories served from an upstream registry and kept here.

`ProxyService.repository` wraps a local repository in a `ProxiedRepository` when the cache
stands in for its name; the route handlers only ever see the repository interface
(`dockyard.service.repository`). This package may use the client (`dockyard.client`) to reach
upstreams; `dockyard.service` never does.
"""
