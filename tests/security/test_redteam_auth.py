"""Issue 13, red team: the fixes attacked as an ordinary account holder would, on loopback.

Each `test_attack_…` is a hole found that way (it failed before its fix); the guards after
them pin the most tempting bypasses that held, so a later change cannot quietly reopen them.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.auth.conftest import QUIET, start_auth_registry  # noqa: F401 - module registries
from tests.auth.helpers import (
    ADMIN_PASSWORD,
    SERVICE,
    AuthRegistry,
    admin_auth,
    basic,
    push_image,
)
from tests.support.server import RunningRegistry, free_port

LIMIT = 3  # failed logins per (account, address) where a test turns the throttle on


def _user(reg: AuthRegistry, name: str, password: str, *, image: bool = True) -> None:
    made = httpx.post(
        f"{reg.url}/api/v1/users",
        json={"name": name, "password": password},
        headers={"Authorization": admin_auth()},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    if image:
        with reg.client() as http:
            push_image(http, f"{name}/app", "v1", basic(name, password))


def _from(address: str, reg: AuthRegistry) -> httpx.Client:
    return httpx.Client(
        base_url=reg.url, timeout=30, transport=httpx.HTTPTransport(local_address=address)
    )


def _login(http: httpx.Client, user: str, password: str, **headers: str) -> int:
    return http.get(
        "/token",
        params={"service": SERVICE, "scope": f"repository:{user}/app:pull"},
        headers={"Authorization": basic(user, password), **headers},
    ).status_code


# -- IPv4 clients of a dual-stack listener ----------------------------------------------------


@pytest.fixture(scope="module")
def dual_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    """A registry on an IPv6 socket that takes IPv4 connections: it sees its IPv4 clients as
    IPv4-mapped IPv6 addresses (`::ffff:127.0.0.2`), as every server on `[::]` does. Bound to
    the mapped loopback address only, so nothing leaves this machine."""
    base = tmp_path_factory.mktemp("dual-stack")
    port = free_port()
    server = RunningRegistry(
        data_dir=base / "data",
        port=port,
        # The later --listen wins: the mapped form of 127.0.0.1, reached at 127.0.0.1.
        args=("--auth", "--listen", f"[::ffff:127.0.0.1]:{port}"),
        env={
            **QUIET,
            "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "DOCKYARD_LOGIN_FAILURE_LIMIT": str(LIMIT),
            "DOCKYARD_LOGIN_FAILURE_WINDOW_SECONDS": str(10**9),
            "DOCKYARD_TRUSTED_PROXIES": '["127.0.0.1/32"]',
            "DOCKYARD_WORKERS": "2",
        },
        log_dir=base,
    ).start()
    yield AuthRegistry(server)
    server.stop()


def test_attack_ipv4_clients_of_a_dual_stack_listener_are_told_apart(
    dual_stack: AuthRegistry,
) -> None:
    """Every IPv4 address maps into `::ffff:0:0/96`, so treating the mapped form as an IPv6
    client's /64 made all IPv4 clients one: one guesser locked an account out for all of them.
    And the trusted proxy 127.0.0.1, seen as `::ffff:127.0.0.1`, was not recognised."""
    reg = dual_stack
    _user(reg, "mapped", "mapped-pw")
    with _from("127.0.0.2", reg) as guesser, _from("127.0.0.3", reg) as owner:
        answers = [_login(guesser, "mapped", "guess") for _ in range(LIMIT + 2)]
        assert answers == [401] * LIMIT + [429] * 2
        assert _login(owner, "mapped", "mapped-pw") == 200
    with _from("127.0.0.1", reg) as proxy:
        # Behind the trusted proxy, X-Forwarded-For names the client.
        behind = [
            _login(proxy, "mapped", "guess", **{"X-Forwarded-For": "198.51.100.7"})
            for _ in range(LIMIT + 1)
        ]
        assert behind == [401] * LIMIT + [429]
        assert _login(proxy, "mapped", "mapped-pw", **{"X-Forwarded-For": "198.51.100.8"}) == 200
        # A client forging X-Forwarded-For, not through the proxy, is counted by its own address.
    with _from("127.0.0.4", reg) as forger:
        forged = [
            _login(forger, "mapped", "guess", **{"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(LIMIT + 1)
        ]
        assert forged == [401] * LIMIT + [429]
