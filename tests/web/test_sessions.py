"""The session cookie over TLS, what the server log never holds, and concurrent forms of one
session on the same object."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.auth.helpers import ADMIN_PASSWORD, AuthRegistry, basic
from tests.http.test_tls import tls_server
from tests.web.conftest import QUIET, add_user
from tests.web.test_sign_in import csrf_of, signed_in_client


def test_over_tls_the_session_cookie_is_secure(tmp_path: Path) -> None:
    env = {**QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD}
    with (
        tls_server(tmp_path, "--auth", env=env) as (base, trust, _),
        httpx.Client(base_url=base, verify=trust) as client,
    ):
        form = client.get("/sign-in")
        assert "; secure" in form.headers["set-cookie"].lower()
        signed = client.post(
            "/sign-in",
            data={"csrf": csrf_of(form.text), "username": "admin", "password": ADMIN_PASSWORD},
        )
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"].lower()
        assert "; secure" in cookie and "; httponly" in cookie and "samesite=lax" in cookie
        assert "strict-transport-security" in signed.headers


def test_the_log_never_holds_a_session_or_a_password(
    web_registry: Callable[..., AuthRegistry],
) -> None:
    reg = web_registry(env={"DOCKYARD_LOG_REQUESTS": "true"})
    add_user(reg, "ivy", "ivy-Pa55word")
    with signed_in_client(reg, "ivy", "ivy-Pa55word") as ivy:
        cookie = ivy.cookies["dockyard_session"]
        ivy.get("/")
    assert reg.server.log_path is not None
    log = reg.server.log_path.read_text()
    assert '"POST /sign-in" 303' in log
    assert cookie not in log and cookie.split(".")[1] not in log
    assert "ivy-Pa55word" not in log


def test_one_token_name_created_at_once_from_many_tabs(
    web_registry: Callable[..., AuthRegistry],
) -> None:
    reg = web_registry()
    add_user(reg, "judy", "judy-Pa55word")
    with signed_in_client(reg, "judy", "judy-Pa55word") as judy:
        token = csrf_of(judy.get("/account/tokens").text)

        def create(_: int) -> int:
            return judy.post("/account/tokens", data={"csrf": token, "name": "same"}).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(create, range(8)))
        assert codes == [201] + [409] * 7
        listed = httpx.get(
            f"{reg.url}/api/v1/tokens", headers={"Authorization": basic("judy", "judy-Pa55word")}
        ).json()["tokens"]
        assert [t["name"] for t in listed] == ["same"]
        same = listed[0]["id"]

        def revoke(_: int) -> int:
            return judy.post(
                "/account/tokens/revoke", data={"csrf": token, "token": same}
            ).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = sorted(pool.map(revoke, range(8)))
        assert codes.count(303) == 1 and codes.count(404) == 7
