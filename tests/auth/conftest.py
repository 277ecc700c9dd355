"""Module-scoped registries with accounts on: each test module shares one (or a few) servers,
started here rather than with the function-scoped `start_registry`, to keep the suite fast."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.auth.helpers import ADMIN_PASSWORD, AuthRegistry
from tests.support.server import RunningRegistry, free_port

# Limits off unless a test module turns them on: each module states the ones it relies on.
QUIET = {
    "DOCKYARD_ANONYMOUS_PULL_LIMIT": "0",
    "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "0",
    "DOCKYARD_LOGIN_FAILURE_LIMIT": "0",
    "DOCKYARD_LOG_REQUESTS": "true",
}


@pytest.fixture(scope="module")
def start_auth_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., AuthRegistry]]:
    """`start(env={...}, args=(...))`: a `dockyard serve --auth` with the admin password set."""
    started: list[RunningRegistry] = []

    def start(env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> AuthRegistry:
        base = tmp_path_factory.mktemp("auth-registry")
        server = RunningRegistry(
            data_dir=base / "data",
            port=free_port(),
            args=("--auth", *args),
            env={**QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})},
            log_dir=base,
        ).start()
        started.append(server)
        return AuthRegistry(server)

    yield start
    for server in started:
        server.stop()
