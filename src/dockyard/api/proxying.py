"""Registry proxying (distribution-spec `main`): a pull that carries `?ns=HOST` names the registry
the client would otherwise have asked, and is answered by the pull-through cache configured for
that host, under its cache namespace (`library/alpine?ns=docker.io` is `docker.io/library/alpine`).

Only the configured upstreams' names are looked up, so a client cannot make the server talk to
a host of its choosing: any other `ns` is a repository that does not exist here, except this
registry's own host, which is ignored. Writes carrying `ns` are refused, since cached
repositories are read-only and the spec gives `ns` to pulls.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from starlette.types import Scope

from dockyard.config import Settings
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import validate_name

# The scope key under which the resolved host waits for the response's `OCI-Namespace` header.
NAMESPACE_KEY = "dockyard.ns"
READS = frozenset({"GET", "HEAD"})
# Docker Hub's official images: containerd sends `library/alpine`, other clients may send `alpine`.
DOCKER_HUB = "docker.io"


def requested_namespace(scope: Scope) -> str | None:
    """The `ns` query parameter of a `/v2/` request, if it has one (the last, if repeated)."""
    query: bytes = scope.get("query_string", b"")
    if b"ns=" not in query or not scope.get("path", "").startswith("/v2/"):
        return None
    found = None
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key == "ns":
            found = value
    return found


def cached_name(settings: Settings, host: str, name: str) -> str:
    """The cache namespace's repository that `name` under source host `host` is kept in; a host
    with no configured upstream is a repository that does not exist."""
    upstream = host.lower()
    if not any(proxy.name == upstream for proxy in settings.proxies):
        raise RegistryError(
            ErrorCode.NAME_UNKNOWN, "no upstream is configured here for this ns", {"name": name}
        )
    if upstream == DOCKER_HUB and "/" not in name:
        name = f"library/{name}"
    return validate_name(f"{upstream}/{name}")


def proxied_repository(scope: Scope, settings: Settings, name: str) -> str:
    """`name` as the request means it: itself without `ns` (or with an `ns` naming this registry,
    which a client need not know it should leave out), else its cached repository (and the host
    is remembered for the answer's `OCI-Namespace` header)."""
    host = requested_namespace(scope)
    if host is None or host.lower() == urlsplit(settings.public_base()).netloc.lower():
        return name
    if scope["method"] not in READS:
        raise RegistryError(
            ErrorCode.UNSUPPORTED,
            "ns (registry proxying) is for pulls only: cached repositories are read-only",
        )
    resolved = cached_name(settings, host, name)
    scope[NAMESPACE_KEY] = host.lower()
    return resolved
