"""Issue 13, red team: the fixes attacked as an ordinary account holder would, on loopback.

Each `test_attack_…` is a hole found that way (it failed before its fix); the guards after
them pin the most tempting bypasses that held, so a later change cannot quietly reopen them.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.config import load_settings, scrub
from tests.auth.conftest import QUIET, start_auth_registry  # noqa: F401 - module registries
from tests.auth.helpers import (
    ADMIN_PASSWORD,
    OCI_MANIFEST,
    SERVICE,
    AuthRegistry,
    admin_auth,
    basic,
    get_manifest,
    push_image,
    settle_access,
)
from tests.support.postgres import PostgresCluster
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
    _user(reg, "mapped", "mapped-password")
    with _from("127.0.0.2", reg) as guesser, _from("127.0.0.3", reg) as owner:
        answers = [_login(guesser, "mapped", "guess") for _ in range(LIMIT + 2)]
        assert answers == [401] * LIMIT + [429] * 2
        assert _login(owner, "mapped", "mapped-password") == 200
    with _from("127.0.0.1", reg) as proxy:
        # Behind the trusted proxy, X-Forwarded-For names the client.
        behind = [
            _login(proxy, "mapped", "guess", **{"X-Forwarded-For": "198.51.100.7"})
            for _ in range(LIMIT + 1)
        ]
        assert behind == [401] * LIMIT + [429]
        forwarded = {"X-Forwarded-For": "198.51.100.8"}
        assert _login(proxy, "mapped", "mapped-password", **forwarded) == 200
        # A client forging X-Forwarded-For, not through the proxy, is counted by its own address.
    with _from("127.0.0.4", reg) as forger:
        forged = [
            _login(forger, "mapped", "guess", **{"X-Forwarded-For": f"203.0.113.{i}"})
            for i in range(LIMIT + 1)
        ]
        assert forged == [401] * LIMIT + [429]


# -- secrets in unusual places of the configuration -------------------------------------------


def _dockyard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_attack_config_show_prints_no_password_from_a_url_query(tmp_path: Path) -> None:
    """libpq and redis-py both take the password as a query parameter too
    (`?password=…`): `config show` printed it, and messages quoting the URL kept it."""
    pg_secret, redis_secret, ssl_secret = "pg-S3cret", "redis-S3cret", "ssl-S3cret"
    env = {
        "DOCKYARD_METADATA": (
            f"postgresql://reg@db.invalid/reg?sslmode=require&Password={pg_secret}"
            f"&sslpassword={ssl_secret}"
        ),
        "DOCKYARD_REDIS_URL": f"redis://db.invalid:6379/0?password={redis_secret}",
    }
    shown = _dockyard("config", "show", "--data-dir", str(tmp_path / "data"), env=env)
    assert shown.returncode == 0, shown.stderr
    for secret in (pg_secret, redis_secret, ssl_secret):
        assert secret not in shown.stdout + shown.stderr
    # What the reader needs stays: where the database is, and that a password is set.
    assert "postgresql://reg@db.invalid/reg?sslmode=require&Password=***" in shown.stdout
    settings = load_settings(overrides={"data_dir": tmp_path / "data"}, environ=env)
    assert scrub(f"connection to {settings.metadata} failed", settings).count("***") == 2
    assert redis_secret not in scrub(str(settings.redis_url), settings)


def test_attack_upstream_credentials_belong_in_their_own_keys(tmp_path: Path) -> None:
    """An upstream's URL with `user:password@` was accepted, and `config show` (and logs that
    name the upstream's URL) printed the password: it is refused, pointing at the keys that
    are redacted."""
    config = tmp_path / "dockyard.yaml"
    config.write_text(
        "proxies:\n  - name: docker.io\n    url: https://bot:hub-S3cret@registry.invalid\n"
    )
    shown = _dockyard("config", "show", "--config", str(config), env={})
    assert shown.returncode == 2
    assert "hub-S3cret" not in shown.stdout + shown.stderr
    assert "username" in shown.stderr and "password" in shown.stderr
    flag = _dockyard(
        "serve",
        "--proxy",
        "docker.io=https://bot:hub-S3cret@registry.invalid",
        "--data-dir",
        str(tmp_path / "data"),
        env={},
    )
    assert flag.returncode == 2
    assert "hub-S3cret" not in flag.stdout + flag.stderr


# -- counters kept for their whole window ------------------------------------------------------


def test_attack_a_failed_login_does_not_reset_the_pull_limit(tmp_path: Path) -> None:
    """Every counter write sweeps old rows now and then, judged by the window of the write
    doing it: a failed login (a 300 s window) swept away the counts of the pull limit (a 6 h
    window, here a longer one), so anyone could reset their pull limit by failing a login
    every ten minutes. A restart makes the sweep's moment certain here (each process sweeps
    at its first write, then every ten minutes)."""
    env = {
        **QUIET,
        "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "DOCKYARD_WORKERS": "1",
        "DOCKYARD_ANONYMOUS_PULL_LIMIT": "2",
        "DOCKYARD_PULL_LIMIT_WINDOW_SECONDS": str(10**9),
        "DOCKYARD_LOGIN_FAILURE_LIMIT": "5",
    }

    def start() -> RunningRegistry:
        return RunningRegistry(
            data_dir=tmp_path / "data",
            port=free_port(),
            args=("--auth",),
            env=env,
            log_dir=tmp_path,
        ).start()

    server = start()
    try:
        reg = AuthRegistry(server)
        _user(reg, "open", "open-password")
        made_public = httpx.put(
            f"{reg.url}/api/v1/repositories/open/app/visibility",
            json={"visibility": "public"},
            headers={"Authorization": basic("open", "open-password")},
            timeout=30,
        )
        assert made_public.status_code == 200, made_public.text
        with reg.client() as http:
            bearer = (
                "Bearer "
                + http.get(
                    "/token", params={"service": SERVICE, "scope": "repository:open/app:pull"}
                ).json()["token"]
            )
            pulls = [get_manifest(http, "open/app", "v1", bearer).status_code for _ in range(3)]
        assert pulls == [200, 200, 429]
    finally:
        server.stop()
    server = start()
    try:
        reg = AuthRegistry(server)
        with reg.client() as http:
            assert _login(http, "open", "guess") == 401
            assert get_manifest(http, "open/app", "v1", bearer).status_code == 429
    finally:
        server.stop()


# -- a registry with two workers, shared by the attacks below ---------------------------------

PROBES = 12  # new connections per check: both workers answer some


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:  # noqa: F811
    return start_auth_registry(env={"DOCKYARD_WORKERS": "2"})


def _statuses(reg: AuthRegistry, repo: str, tag: str, auth: str | None) -> list[int]:
    answers = []
    for _ in range(PROBES):
        with reg.client() as http:
            answers.append(get_manifest(http, repo, tag, auth).status_code)
    return answers


def _visibility(reg: AuthRegistry, repo: str, value: str, auth: str) -> None:
    answer = httpx.put(
        f"{reg.url}/api/v1/repositories/{repo}/visibility",
        json={"visibility": value},
        headers={"Authorization": auth},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text


def test_attack_a_token_minted_while_public_cannot_read_once_private(reg: AuthRegistry) -> None:
    """A repository made private kept answering tokens minted while it was public (and
    anonymous ones) for their whole lifetime: its owner, having made it private, could push
    something secret and have it read. A token never exceeds what its owner may do now."""
    _user(reg, "pia", "pia-password")
    _user(reg, "otto", "otto-password", image=False)
    _visibility(reg, "pia/app", "public", basic("pia", "pia-password"))
    scope = "repository:pia/app:pull"
    otto = reg.bearer(scope, basic("otto", "otto-password"))
    anonymous = reg.bearer(scope)
    pia = reg.bearer(scope, basic("pia", "pia-password"))
    for auth in (otto, anonymous, pia):
        assert _statuses(reg, "pia/app", "v1", auth) == [200] * PROBES
    _visibility(reg, "pia/app", "private", basic("pia", "pia-password"))
    with reg.client() as http:
        push_image(http, "pia/app", "secret", basic("pia", "pia-password"), note="secret")
    time.sleep(1.0)
    for auth in (otto, anonymous):
        assert _statuses(reg, "pia/app", "secret", auth) == [401] * PROBES
        assert _statuses(reg, "pia/app", "v1", auth) == [401] * PROBES
    # The owner's own token, minted while it was public, goes on working.
    assert _statuses(reg, "pia/app", "secret", pia) == [200] * PROBES


def _read_statuses(
    reg: AuthRegistry, repo: str, manifest: str, blob: str, auth: str | None
) -> dict[str, list[int]]:
    """Every read route of a repository, each on new connections (both workers answer some),
    with and without `?ns=` naming this registry itself (which the spec's proxying ignores)."""
    own = f"ns={reg.host}"
    routes = {
        "manifest GET": ("GET", f"/v2/{repo}/manifests/{manifest}"),
        "manifest HEAD": ("HEAD", f"/v2/{repo}/manifests/{manifest}"),
        "manifest GET ?ns=self": ("GET", f"/v2/{repo}/manifests/{manifest}?{own}"),
        "blob GET": ("GET", f"/v2/{repo}/blobs/{blob}"),
        "blob HEAD": ("HEAD", f"/v2/{repo}/blobs/{blob}"),
        "blob HEAD ?ns=self": ("HEAD", f"/v2/{repo}/blobs/{blob}?{own}"),
        "tag list": ("GET", f"/v2/{repo}/tags/list"),
        "tag list ?ns=self": ("GET", f"/v2/{repo}/tags/list?{own}"),
        "referrers": ("GET", f"/v2/{repo}/referrers/{manifest}"),
    }
    headers = {"Accept": OCI_MANIFEST, **({"Authorization": auth} if auth else {})}
    answers: dict[str, list[int]] = {}
    host, port = reg.host.rsplit(":", 1)
    for name, (method, path) in routes.items():
        for _ in range(PROBES // 2):
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                connection.request(method, path, headers=headers)
                answer = connection.getresponse()
                answer.read()
                answers.setdefault(name, []).append(answer.status)
            finally:
                connection.close()
    return answers


def test_a_token_minted_while_public_reads_no_route_once_private(reg: AuthRegistry) -> None:
    """The attack above, on every read route and not the manifest GET alone: the hot reads
    (manifest GET and HEAD, blob HEAD) remember a token's grant per repository, the others
    ask the gate each time; `?ns=` naming this registry must lead to the same decision."""
    _user(reg, "rhea", "rhea-password", image=False)
    _user(reg, "ivo", "ivo-password", image=False)
    owner = basic("rhea", "rhea-password")
    with reg.client() as http:
        digest, body = push_image(http, "rhea/app", "v1", owner)
    blob = json.loads(body)["config"]["digest"]
    _visibility(reg, "rhea/app", "public", owner)
    scope = "repository:rhea/app:pull"
    minted = {
        "ivo": reg.bearer(scope, basic("ivo", "ivo-password")),
        "anonymous": reg.bearer(scope),
    }
    for who, auth in minted.items():
        for route, codes in _read_statuses(reg, "rhea/app", digest, blob, auth).items():
            assert set(codes) == {200}, (who, route, codes)
    _visibility(reg, "rhea/app", "private", owner)
    settle_access()
    for who, auth in [*minted.items(), ("no token", None)]:
        for route, codes in _read_statuses(reg, "rhea/app", digest, blob, auth).items():
            assert set(codes) == {401}, (who, route, codes)
    for route, codes in _read_statuses(reg, "rhea/app", digest, blob, owner).items():
        assert set(codes) == {200}, ("owner", route, codes)


@pytest.fixture(scope="module")
def throttled(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:  # noqa: F811
    return start_auth_registry(
        env={
            "DOCKYARD_LOGIN_FAILURE_LIMIT": str(LIMIT),
            "DOCKYARD_LOGIN_FAILURE_WINDOW_SECONDS": str(10**9),
        }
    )


def test_attack_a_foreign_page_cannot_spend_a_users_login_attempts(throttled: AuthRegistry) -> None:
    """The OAuth2 form at /token is what an HTML form on any site can POST, without a CORS
    preflight: a page the user visits could send failed logins for them from their own
    address, locking them out there. Like /api/v1, /token refuses requests from other sites
    before any credential is looked at (docker, podman and the other clients send no Origin)."""
    reg = throttled
    _user(reg, "vera", "vera-password", image=False)
    with _from("127.0.0.31", reg) as browser:
        for _ in range(LIMIT + 2):
            forged = browser.post(
                "/token",
                data={
                    "grant_type": "password",
                    "username": "vera",
                    "password": "guess",
                    "service": SERVICE,
                },
                headers={"Origin": "https://evil.example"},
            )
            assert forged.status_code == 403, forged.text
            assert forged.json()["errors"][0]["code"] == "DENIED"
        assert _login(browser, "vera", "vera-password") == 200
        own = browser.post(
            "/token",
            data={
                "grant_type": "password",
                "username": "vera",
                "password": "vera-password",
                "service": SERVICE,
            },
            headers={"Origin": reg.url},
        )
        assert own.status_code == 200, own.text


# -- odd input on PostgreSQL, which refuses NUL characters and over-long values ---------------


@pytest.fixture(scope="module")
def pg_reg(
    start_auth_registry: Callable[..., AuthRegistry],  # noqa: F811
    pg_cluster: PostgresCluster,
) -> AuthRegistry:
    return start_auth_registry(env={"DOCKYARD_METADATA": pg_cluster.create_database()})


def test_attack_odd_names_get_the_specs_errors_on_postgresql(pg_reg: AuthRegistry) -> None:
    """PostgreSQL refuses text with a NUL character and values longer than their column,
    where SQLite stores anything: names sent by clients (a Basic username, a token's name, an
    account or token named in a path) answered 500 there."""
    reg = pg_reg
    _user(reg, "nul", "nul-password", image=False)
    own = {"Authorization": basic("nul", "nul-password")}
    admin = {"Authorization": admin_auth()}
    with reg.client() as http:
        for username in ("a\x00b", "n" * 300, "nul\x00"):
            for path in ("/token", "/v2/", "/v2/nul/app/tags/list"):
                answer = http.get(path, headers={"Authorization": basic(username, "pw")})
                assert answer.status_code == 401, (path, answer.text)
            grant = http.post(
                "/token",
                data={"grant_type": "password", "username": username, "password": "pw"},
            )
            assert grant.status_code == 401, grant.text
        for name in ("t" * 101, "a\x00b"):
            made = http.post("/api/v1/tokens", json={"name": name}, headers=own)
            assert made.status_code == 400, made.text
        for name, status in (("t" * 100, 201), ("", 400), (["list"], 400)):
            made = http.post("/api/v1/tokens", json={"name": name}, headers=own)
            assert made.status_code == status, made.text
        for path in ("/api/v1/tokens/a%00b", "/api/v1/tokens/" + "x" * 300):
            assert http.delete(path, headers=own).status_code == 404
        for method in ("DELETE", "PUT"):
            answer = http.request(
                method, "/api/v1/users/a%00b", json={"password": "x"}, headers=admin
            )
            assert answer.status_code in (400, 404), answer.text
            assert answer.json()["errors"]
        for path in ("/api/v1/orgs/a%00b/members/nul", "/api/v1/orgs/x/members/a%00b"):
            answer = http.put(path, json={"role": "reader"}, headers=admin)
            assert answer.status_code in (400, 404), answer.text
        answer = http.post("/api/v1/orgs", json={"name": "a\x00b"}, headers=own)
        assert answer.status_code == 400, answer.text
        answer = http.post("/api/v1/users", json={"name": "u\x00", "password": "p"}, headers=admin)
        assert answer.status_code == 400, answer.text


@pytest.fixture(scope="module")
def limited(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:  # noqa: F811
    """Anonymous pulls limited; 127.0.0.1 is a trusted proxy whose X-Forwarded-For names the
    client, to play IPv6 clients on loopback."""
    return start_auth_registry(
        env={
            "DOCKYARD_ANONYMOUS_PULL_LIMIT": str(LIMIT),
            "DOCKYARD_PULL_LIMIT_WINDOW_SECONDS": str(10**9),
            "DOCKYARD_TRUSTED_PROXIES": '["127.0.0.1/32"]',
            "DOCKYARD_WORKERS": "2",
        }
    )


def test_attack_an_ipv6_client_cannot_dodge_the_anonymous_pull_limit(limited: AuthRegistry) -> None:
    """An IPv6 client owns its whole /64 (privacy addresses change all the time): the login
    throttle counted it as one, the anonymous pull limit by address, so a new address from
    the same /64 brought a fresh limit with every pull."""
    reg = limited
    _user(reg, "pub", "pub-password")
    _visibility(reg, "pub/app", "public", basic("pub", "pub-password"))

    def pull(client: str) -> int:
        with reg.client() as http:
            return get_manifest(
                http, "pub/app", "v1", None, **{"X-Forwarded-For": client}
            ).status_code

    answers = [pull(f"2001:db8:5::{i}") for i in range(1, LIMIT + 3)]
    assert answers == [200] * LIMIT + [429] * 2
    assert pull("2001:db8:6::1") == 200  # another /64 is another client


# -- guards: bypasses tried that held ----------------------------------------------------------


def test_guard_a_read_token_never_grows_through_token_requests(reg: AuthRegistry) -> None:
    """A read-scoped access token, used as a password at /token, asked for every spelling of
    more (`*`, repeated and space-joined scopes, upper case, the catalog, another's
    repository), then through an offline refresh token: only pull on its own repositories,
    and nothing once it is revoked."""
    _user(reg, "rex", "rex-password")
    _user(reg, "vic", "vic-password")
    made = httpx.post(
        f"{reg.url}/api/v1/tokens",
        json={"name": "ro", "scope": "read"},
        headers={"Authorization": basic("rex", "rex-password")},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    secret = made.json()["token"]
    asked = [
        "repository:rex/app:*",
        "repository:rex/app:pull,push,delete",
        "repository:rex/app:push repository:rex/app:delete",
        "repository:REX/app:push",
        "repository:vic/app:pull",
        "repository:vic/app:*",
    ]
    answer = reg.token_response(asked, basic("", secret), offline_token="true")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["scope"] == "repository:rex/app:pull"
    refreshed = httpx.post(
        reg.realm,
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "service": SERVICE,
            "scope": " ".join(asked),
        },
        timeout=30,
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["scope"] == "repository:rex/app:pull"
    bearer = "Bearer " + refreshed.json()["token"]
    with reg.client() as http:
        assert get_manifest(http, "vic/app", "v1", bearer).status_code == 401
        pushed = http.post("/v2/rex/app/blobs/uploads/", headers={"Authorization": bearer})
        assert pushed.status_code == 403, pushed.text
        # The token may end itself; then neither it nor what it obtained works.
        assert (
            http.delete(
                "/api/v1/tokens/ro", headers={"Authorization": basic("rex", secret)}
            ).status_code
            == 204
        )
    time.sleep(1.0)
    assert _statuses(reg, "rex/app", "v1", bearer) == [401] * PROBES
    again = httpx.post(
        reg.realm,
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "service": SERVICE,
        },
        timeout=30,
    )
    assert again.status_code == 401, again.text
