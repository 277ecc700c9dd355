"""The session cookie over TLS, what the server log never holds, and concurrent forms of one
session on the same object."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.auth.helpers import ADMIN_PASSWORD, AuthRegistry, basic
from tests.http.test_tls import self_signed
from tests.support.server import free_port
from tests.web.conftest import QUIET, add_user
from tests.web.test_sign_in import csrf_of, signed_in_client


def test_over_tls_the_session_cookie_is_secure(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dockyard",
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--data-dir",
                str(tmp_path / "data"),
                "--auth",
                "--tls-cert",
                str(cert),
                "--tls-key",
                str(key),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **QUIET, "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD},
        )
    base = f"https://127.0.0.1:{port}"
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 60  # a loaded machine starts slowly
        while True:
            try:
                httpx.get(base + "/v2/", verify=trust, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()
                time.sleep(0.1)
        with httpx.Client(base_url=base, verify=trust) as client:
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
    finally:
        # The whole process group: the workers too, also when the start failed.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


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
