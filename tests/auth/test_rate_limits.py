"""Pull rate limits and failed-login throttling.

Manifest GETs are counted per anonymous client address and per account, announced on every
counted response (`RateLimit-Limit: 3;w=21600`, `RateLimit-Remaining: N;w=21600`) and refused
over the limit with 429 TOOMANYREQUESTS and Retry-After; HEAD is free; administrators and
accounts with an `unlimited` override are not limited. Client addresses are real loopback
addresses (127.0.0.2, 127.0.0.3, ...: every 127/8 address reaches a server on 127.0.0.1), so
"another client" really is another peer; X-Forwarded-For counts only from a trusted proxy.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.auth.helpers import (
    WINDOW,
    AuthRegistry,
    admin_auth,
    basic,
    code_of,
    get_manifest,
    push_image,
)

REPO, PRIVATE = "acme/app", "acme/hidden"
USERS = {
    "ursula": "ursula-pw",
    "walt": "walt-pass",
    "vera": "vera-pass",
    "cap": "cap-pass",
    "lf-one": "lf-one-pw",
    "lf-two": "lf-two-pw",
    "lf-three": "lf-three-pw",
    "lf-win": "lf-win-pw",
}
LIMITS = {
    "DOCKYARD_ANONYMOUS_PULL_LIMIT": "3",
    "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "4",
    "DOCKYARD_PULL_LIMIT_WINDOW_SECONDS": str(WINDOW),
    "DOCKYARD_LOGIN_FAILURE_LIMIT": "3",
}
LOGIN_WINDOW = 3  # the proxied registry's failed-login window: short, to see it pass
# The other registry's: counters live in fixed windows aligned on multiples of the length, so
# a window this long never ends during a test run (one of an hour might).
LONG_WINDOW = 10**9


def setup_registry(reg: AuthRegistry, users: list[str]) -> None:
    for name in users:
        reg.add_user(name, USERS[name])
    reg.admin("org", "create", "acme")
    with reg.client() as http:
        push_image(http, REPO, "v1")
        push_image(http, PRIVATE, "v1")
    reg.admin("repo", "visibility", REPO, "public")


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    """Limits on, no trusted proxies, failed logins counted in one long window."""
    reg = start_auth_registry(
        env={**LIMITS, "DOCKYARD_LOGIN_FAILURE_WINDOW_SECONDS": str(LONG_WINDOW)}
    )
    setup_registry(reg, [name for name in USERS if name != "lf-win"])
    reg.admin("user", "pull-limit", "vera", "unlimited")
    reg.admin("user", "pull-limit", "cap", "2")
    return reg


@pytest.fixture(scope="module")
def proxied(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:
    """The same limits behind a trusted proxy at 127.0.0.1, with a short failed-login window."""
    reg = start_auth_registry(
        env={
            **LIMITS,
            "DOCKYARD_TRUSTED_PROXIES": "127.0.0.1",
            "DOCKYARD_LOGIN_FAILURE_WINDOW_SECONDS": str(LOGIN_WINDOW),
        }
    )
    setup_registry(reg, ["lf-win"])
    return reg


@pytest.fixture
def peer() -> Iterator[Callable[..., httpx.Client]]:
    """`peer(reg, "127.0.0.5")`: a client whose connections come from that address."""
    clients: list[httpx.Client] = []

    def make(reg: AuthRegistry, address: str) -> httpx.Client:
        client = httpx.Client(
            base_url=reg.url, timeout=30.0, transport=httpx.HTTPTransport(local_address=address)
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def pull(
    client: httpx.Client,
    auth: str | None = None,
    method: str = "GET",
    repo: str = REPO,
    reference: str = "v1",
    **headers: str,
) -> httpx.Response:
    return get_manifest(client, repo, reference, auth, method, **headers)


def assert_counted(response: httpx.Response, limit: int, remaining: int) -> None:
    assert response.status_code == 200, response.text
    assert response.headers["RateLimit-Limit"] == f"{limit};w={WINDOW}"
    assert response.headers["RateLimit-Remaining"] == f"{remaining};w={WINDOW}"


def assert_limited(response: httpx.Response, limit: int) -> None:
    assert response.status_code == 429, response.text
    assert code_of(response) == "TOOMANYREQUESTS"
    assert response.headers["RateLimit-Limit"] == f"{limit};w={WINDOW}"
    assert response.headers["RateLimit-Remaining"] == f"0;w={WINDOW}"
    assert 1 <= int(response.headers["Retry-After"]) <= WINDOW


def assert_unlimited(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert "RateLimit-Limit" not in response.headers
    assert "RateLimit-Remaining" not in response.headers


# -- pulls --------------------------------------------------------------------------------


def test_anonymous_limit_headers_and_429(
    reg: AuthRegistry, peer: Callable[..., httpx.Client]
) -> None:
    client = peer(reg, "127.0.0.2")
    for _ in range(3):  # HEAD is free
        assert pull(client, method="HEAD").status_code == 200
    for remaining in (2, 1, 0):
        assert_counted(pull(client), 3, remaining)
    assert_limited(pull(client), 3)
    assert_limited(pull(client), 3)
    # Still free over the limit: HEAD, blobs, tag lists.
    head = pull(client, method="HEAD")
    assert head.status_code == 200
    assert client.get(f"/v2/{REPO}/tags/list").json()["tags"] == ["v1"]
    # By digest as well as by tag.
    assert_limited(pull(client, reference=head.headers["Docker-Content-Digest"]), 3)


def test_counters_are_per_address(reg: AuthRegistry, peer: Callable[..., httpx.Client]) -> None:
    first, second = peer(reg, "127.0.0.3"), peer(reg, "127.0.0.4")
    assert_counted(pull(first), 3, 2)
    assert_counted(pull(first), 3, 1)
    assert_counted(pull(second), 3, 2)
    assert_counted(pull(first), 3, 0)
    assert_counted(pull(second), 3, 1)


def test_only_pulls_that_return_a_manifest_count(
    reg: AuthRegistry, peer: Callable[..., httpx.Client]
) -> None:
    client = peer(reg, "127.0.0.5")
    assert pull(client, reference="no-such-tag").status_code == 404
    assert pull(client, repo=PRIVATE).status_code == 401
    assert pull(client, repo="acme/never-pushed").status_code == 401
    assert_counted(pull(client), 3, 2)


def test_counters_are_per_account(reg: AuthRegistry, peer: Callable[..., httpx.Client]) -> None:
    """ursula's pulls count against ursula wherever they come from and however she logs in
    (Basic, or a bearer token); not against the address, nor against walt."""
    ursula = basic("ursula", USERS["ursula"])
    exhausted = peer(reg, "127.0.0.6")
    for _ in range(3):
        pull(exhausted)
    assert_limited(pull(exhausted), 3)  # anonymous from .6: done

    assert_counted(pull(exhausted, ursula), 4, 3)
    bearer = reg.bearer(f"repository:{REPO}:pull", ursula)
    assert_counted(pull(peer(reg, "127.0.0.7"), bearer), 4, 2)
    assert_counted(pull(peer(reg, "127.0.0.8"), ursula), 4, 1)
    assert_counted(pull(exhausted, bearer), 4, 0)
    assert_limited(pull(exhausted, ursula), 4)
    assert_limited(pull(peer(reg, "127.0.0.9"), bearer), 4)

    assert_counted(pull(exhausted, basic("walt", USERS["walt"])), 4, 3)
    assert_counted(pull(peer(reg, "127.0.0.10")), 3, 2)  # anonymous from a fresh address


def test_admin_is_unlimited(reg: AuthRegistry, peer: Callable[..., httpx.Client]) -> None:
    client = peer(reg, "127.0.0.11")
    for _ in range(6):
        assert_unlimited(pull(client, admin_auth()))
    bearer = reg.bearer(f"repository:{REPO}:pull", admin_auth())
    assert_unlimited(pull(client, bearer))


def test_per_account_overrides(reg: AuthRegistry, peer: Callable[..., httpx.Client]) -> None:
    client = peer(reg, "127.0.0.12")
    vera = basic("vera", USERS["vera"])
    for _ in range(6):
        assert_unlimited(pull(client, vera))
    cap = basic("cap", USERS["cap"])
    assert_counted(pull(client, cap), 2, 1)
    assert_counted(pull(client, cap), 2, 0)
    assert_limited(pull(client, cap), 2)
    # Back to the registry's default: the counter of this window goes on.
    reg.admin("user", "pull-limit", "cap", "default")
    assert_counted(pull(client, cap), 4, 0)
    assert_limited(pull(client, cap), 4)
    reg.admin("user", "pull-limit", "cap", "unlimited")
    assert_unlimited(pull(client, cap))


def test_forwarded_for_is_ignored_without_trusted_proxies(
    reg: AuthRegistry, peer: Callable[..., httpx.Client]
) -> None:
    client = peer(reg, "127.0.0.13")
    for remaining, forwarded in ((2, "203.0.113.1"), (1, "203.0.113.2"), (0, "203.0.113.3")):
        assert_counted(pull(client, **{"X-Forwarded-For": forwarded}), 3, remaining)
    assert_limited(pull(client, **{"X-Forwarded-For": "203.0.113.4"}), 3)


def test_forwarded_for_is_honoured_from_a_trusted_proxy(
    proxied: AuthRegistry, peer: Callable[..., httpx.Client]
) -> None:
    proxy = peer(proxied, "127.0.0.1")

    def via_proxy(forwarded: str) -> httpx.Response:
        return pull(proxy, **{"X-Forwarded-For": forwarded})

    for remaining in (2, 1, 0):
        assert_counted(via_proxy("198.51.100.7"), 3, remaining)
    assert_limited(via_proxy("198.51.100.7"), 3)
    assert_counted(via_proxy("198.51.100.8"), 3, 2)
    # The nearest hop the proxy did not vouch for counts: what the client wrote itself
    # (the left part) is not believed, trusted hops are skipped.
    assert_limited(via_proxy("198.51.100.8, 198.51.100.7"), 3)
    assert_counted(via_proxy("198.51.100.7, 198.51.100.8"), 3, 1)
    assert_counted(via_proxy("198.51.100.9, 127.0.0.1"), 3, 2)
    # The proxy's own requests count for the proxy.
    assert_counted(pull(proxy), 3, 2)
    # A peer that is not a trusted proxy cannot pick its counter.
    stranger = peer(proxied, "127.0.0.2")
    assert_counted(pull(stranger, **{"X-Forwarded-For": "198.51.100.30"}), 3, 2)
    assert_counted(pull(stranger, **{"X-Forwarded-For": "198.51.100.31"}), 3, 1)


# -- failed logins ---------------------------------------------------------------------------


def login(
    client: httpx.Client, reg: AuthRegistry, user: str, password: str, **headers: str
) -> httpx.Response:
    return client.get(
        reg.realm,
        params={"service": "dockyard", "scope": f"repository:{REPO}:pull"},
        headers={"Authorization": basic(user, password), **headers},
    )


def assert_throttled(response: httpx.Response, window: int) -> None:
    assert response.status_code == 429, response.text
    assert code_of(response) == "TOOMANYREQUESTS"
    assert 1 <= int(response.headers["Retry-After"]) <= window


def test_failed_logins_are_throttled_per_account_and_address(
    reg: AuthRegistry, peer: Callable[..., httpx.Client]
) -> None:
    attacker = peer(reg, "127.0.0.20")
    for _ in range(3):
        refused = login(attacker, reg, "lf-one", "guess")
        assert refused.status_code == 401, refused.text
        assert code_of(refused) == "UNAUTHORIZED"
    assert_throttled(login(attacker, reg, "lf-one", "guess"), LONG_WINDOW)
    # Now the right password is refused too from that address, at the token endpoint and at
    # the API, until the window passes.
    assert_throttled(login(attacker, reg, "lf-one", USERS["lf-one"]), LONG_WINDOW)
    assert_throttled(
        attacker.get("/v2/", headers={"Authorization": basic("lf-one", USERS["lf-one"])}),
        LONG_WINDOW,
    )
    # From elsewhere the account is fine (until it collects ten times the limit), and others
    # are not affected even from the attacker's address.
    elsewhere = peer(reg, "127.0.0.21")
    assert login(elsewhere, reg, "lf-one", USERS["lf-one"]).status_code == 200
    direct = elsewhere.get("/v2/", headers={"Authorization": basic("lf-one", USERS["lf-one"])})
    assert direct.status_code == 200
    assert login(attacker, reg, "lf-two", USERS["lf-two"]).status_code == 200


def test_one_addresss_failures_lock_out_no_other_account(
    reg: AuthRegistry, peer: Callable[..., httpx.Client]
) -> None:
    """Everyone behind a NAT or a CI runner shares an address."""
    sprayer = peer(reg, "127.0.0.22")
    for user in ("nobody-1", "nobody-2", "lf-three"):
        assert login(sprayer, reg, user, "guess").status_code == 401
    assert login(sprayer, reg, "lf-two", USERS["lf-two"]).status_code == 200
    assert (
        sprayer.get("/v2/", headers={"Authorization": basic("lf-two", USERS["lf-two"])}).status_code
        == 200
    )
    # lf-three had one failure only: fine from another address.
    assert login(peer(reg, "127.0.0.23"), reg, "lf-three", USERS["lf-three"]).status_code == 200


def test_throttle_ends_when_the_window_passes(
    proxied: AuthRegistry, peer: Callable[..., httpx.Client]
) -> None:
    """Counted in fixed windows of LOGIN_WINDOW seconds (behind the trusted proxy, per
    forwarded address). The burst starts at a window's start; should a slow machine still
    cross into the next window mid-burst, it is simply repeated."""
    proxy = peer(proxied, "127.0.0.1")
    for attempt in range(3):
        time.sleep(LOGIN_WINDOW - time.time() % LOGIN_WINDOW + 0.05)
        window = int(time.time() // LOGIN_WINDOW)
        forwarded = {"X-Forwarded-For": f"192.0.2.{attempt + 1}"}
        answers = [login(proxy, proxied, "lf-win", "guess", **forwarded) for _ in range(3)]
        locked = login(proxy, proxied, "lf-win", USERS["lf-win"], **forwarded)
        if int(time.time() // LOGIN_WINDOW) == window:
            break
    else:
        pytest.fail("three attempts never fitted in one window")
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert_throttled(locked, LOGIN_WINDOW)
    time.sleep(LOGIN_WINDOW - time.time() % LOGIN_WINDOW + 0.05)
    assert login(proxy, proxied, "lf-win", USERS["lf-win"], **forwarded).status_code == 200
