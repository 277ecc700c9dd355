"""Structured logs: `--log-format json`, the request id on every line of a request, and no
secret in any line.

The secrets scenario runs on S3 (with presigned redirects) and PostgreSQL, the verbose server
(libraries' own INFO lines on, httpx's included) in both formats, and greps every line the
server and the client wrote for every password, token, cookie and signature it used.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.auth.helpers import (
    ADMIN_PASSWORD,
    AuthRegistry,
    admin_auth,
    basic,
    get_manifest,
    push_image,
)
from tests.conftest import s3_postgres_env
from tests.support.images import write_oci_image
from tests.support.server import RunningRegistry, free_port, register_secret

QUIET = {
    "DOCKYARD_ANONYMOUS_PULL_LIMIT": "0",
    "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "0",
    "DOCKYARD_LOGIN_FAILURE_LIMIT": "0",
}


def json_lines(server: RunningRegistry) -> list[dict]:
    lines = [line for line in server.log().splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[RunningRegistry]:
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        args=("--log-format", "json"),
        # 127.0.0.1 plays the trusted proxy; other loopback addresses are clients.
        env={"DOCKYARD_TRUSTED_PROXIES": '["127.0.0.1/32"]', "DOCKYARD_WORKERS": "1"},
        log_dir=tmp_path,
    ).start()
    yield server
    server.stop()


def test_json_lines_carry_the_request_id_sent_back(json_server: RunningRegistry) -> None:
    with httpx.Client(base_url=json_server.url) as client:
        generated = client.get("/v2/").headers["x-request-id"]
        missing = client.get("/v2/nothing/here/manifests/latest")
        assert missing.status_code == 404
        trusted = client.get("/v2/", headers={"X-Request-ID": "edge-42.a:b"})
        malformed = client.get("/v2/", headers={"X-Request-ID": "two words"})
        oversized = client.get("/v2/", headers={"X-Request-ID": "a" * 129})
    with httpx.Client(
        base_url=json_server.url, transport=httpx.HTTPTransport(local_address="127.0.0.2")
    ) as untrusted_client:
        untrusted = untrusted_client.get("/v2/", headers={"X-Request-ID": "forged-by-client"})
    assert re.fullmatch(r"[0-9a-f]{16}", generated)
    assert trusted.headers["x-request-id"] == "edge-42.a:b"
    for refused in (malformed, oversized, untrusted):
        assert re.fullmatch(r"[0-9a-f]{16}", refused.headers["x-request-id"])
    ids = [
        generated,
        missing.headers["x-request-id"],
        trusted.headers["x-request-id"],
        malformed.headers["x-request-id"],
        oversized.headers["x-request-id"],
        untrusted.headers["x-request-id"],
    ]
    assert len(set(ids)) == len(ids)
    entries = json_lines(json_server)  # every line of the log is one JSON object
    # The lines after the start-up probe's.
    access = [e for e in entries if e["logger"] == "dockyard.access"][-len(ids) :]
    assert [e["request_id"] for e in access] == ids
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= entry.keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    first = access[0]
    assert first["level"] == "INFO"
    assert first["http"] == {
        "client": "127.0.0.1",
        "method": "GET",
        "path": "/v2/",
        "status": 200,
        "bytes": first["http"]["bytes"],
        "ms": first["http"]["ms"],
    }
    assert access[1]["http"]["status"] == 404
    assert access[-1]["http"]["client"] == "127.0.0.2"


def test_text_lines_carry_the_request_id(start_registry) -> None:
    server = start_registry()
    response = httpx.get(server.url + "/v2/")
    request_id = response.headers["x-request-id"]
    log = server.log_once_it_has(f"request_id={request_id}")
    lines = [line for line in log.splitlines() if '"GET /v2/"' in line]
    assert lines[-1].endswith(f"ms request_id={request_id}")  # after the start-up probe's


def test_log_format_is_checked(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", "config", "check", "--data-dir", str(tmp_path)],
        env={**os.environ, "DOCKYARD_LOG_FORMAT": "xml"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "log_format" in result.stderr


def _client(*args: str, home: Path, input: str | None = None) -> str:
    env = {**os.environ, "DOCKER_CONFIG": str(home / "docker"), "HOME": str(home)}
    env.pop("REGISTRY_AUTH_FILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        env=env,
        input=input,
        timeout=300,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout + result.stderr


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_secret_reaches_any_log_line(
    log_format: str, tmp_path: Path, s3_server, pg_cluster
) -> None:
    # An upstream on S3 that redirects blob GETs to presigned URLs: the cache follows them,
    # and httpx logs each request's URL at INFO.
    upstream = RunningRegistry(
        data_dir=tmp_path / "upstream",
        port=free_port(),
        env=s3_postgres_env(s3_server, pg_cluster, redirect=True),
        log_dir=tmp_path,
    ).start()
    with httpx.Client(base_url=upstream.url, timeout=30.0) as plain:
        _, upstream_manifest = push_image(plain, "lib/app", "v1", None)
    server = RunningRegistry(
        data_dir=tmp_path / "data",
        port=free_port(),
        args=(
            "--auth",
            "--verbose",
            "--log-format",
            log_format,
            "--proxy",
            f"up={upstream.url}",
        ),
        env={
            **QUIET,
            **s3_postgres_env(s3_server, pg_cluster, redirect=True),
            "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        },
        log_dir=tmp_path,
    ).start()
    reg = AuthRegistry(server)
    secrets: set[str] = {
        ADMIN_PASSWORD,
        base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode(),
    }
    outputs: list[str] = []
    try:
        alice_password = "alice-Secret-pw1"
        wrong_password = "wrong-Secret-pw2"
        secrets |= {alice_password, wrong_password}
        with reg.client() as client:
            made = client.post(
                "/api/v1/users",
                json={"name": "alice", "password": alice_password},
                headers={"Authorization": admin_auth()},
            )
            assert made.status_code == 201, made.text
            # Wrong passwords: on /token, on /v2/ with Basic, on the sign-in page.
            assert reg.token_response([], basic("alice", wrong_password)).status_code == 401
            assert (
                client.get(
                    "/v2/", headers={"Authorization": basic("alice", wrong_password)}
                ).status_code
                == 401
            )
            bearer = reg.bearer("repository:alice/app:push,pull", basic("alice", alice_password))
            secrets.add(bearer.removeprefix("Bearer "))
            secrets.add(base64.b64encode(f"alice:{alice_password}".encode()).decode())
            _digest, _body = push_image(client, "alice/app", "v1", bearer)
            assert (
                client.get(
                    "/v2/", headers={"Authorization": basic("alice", alice_password)}
                ).status_code
                == 200
            )
            created = client.post(
                "/api/v1/tokens",
                json={"name": "ci", "scope": "write"},
                headers={"Authorization": basic("alice", alice_password)},
            )
            assert created.status_code == 201, created.text
            access_token = created.json()["token"]
            secrets.add(access_token)
            by_token = reg.bearer("repository:alice/app:pull", basic("alice", access_token))
            secrets.add(by_token.removeprefix("Bearer "))
            assert get_manifest(client, "alice/app", "v1", by_token).status_code == 200
            # The blob answer is a redirect to a presigned S3 URL.
            config_digest = json.loads(_body)["config"]["digest"]
            redirect = client.get(
                f"/v2/alice/app/blobs/{config_digest}", headers={"Authorization": by_token}
            )
            assert redirect.status_code == 307, redirect.text
            signed = redirect.headers["location"]
            signature = parse_qs(urlsplit(signed).query)["X-Amz-Signature"][0]
            secrets.add(signature)
            assert httpx.get(signed).status_code == 200
            # Through the cache: the upstream's presigned redirect is followed by the server.
            cached = reg.bearer("repository:up/lib/app:pull", admin_auth())
            secrets.add(cached.removeprefix("Bearer "))
            assert get_manifest(client, "up/lib/app", "v1", cached).status_code == 200
            upstream_config = json.loads(upstream_manifest)["config"]["digest"]
            through = client.get(
                f"/v2/up/lib/app/blobs/{upstream_config}",
                headers={"Authorization": cached},
                follow_redirects=True,
            )
            assert through.status_code == 200, through.text
            # A client that sent a secret in a query of its own.
            client.get("/v2/", params={"access_token": access_token})
        with reg.client() as browser:
            form = browser.get("/sign-in")
            refused = browser.post(
                "/sign-in",
                data={"csrf": _csrf(form.text), "username": "alice", "password": wrong_password},
            )
            assert refused.status_code != 303
            form = browser.get("/sign-in")
            signed_in = browser.post(
                "/sign-in",
                data={"csrf": _csrf(form.text), "username": "alice", "password": alice_password},
            )
            assert signed_in.status_code == 303, signed_in.text
            cookies = [c.value for c in browser.cookies.jar]
            assert cookies
            secrets.update(cookies)
            assert browser.get("/account/tokens").status_code == 200
        # The client itself: login, push and pull, both following the S3 redirects.
        home = tmp_path / "home"
        image = tmp_path / "image"
        write_oci_image(image, "v1", seed=f"secrets-{log_format}")
        ref = f"{reg.host}/alice/tool:v1"
        outputs.append(
            _client(
                "login",
                reg.host,
                "-u",
                "alice",
                "--password-stdin",
                input=alice_password + "\n",
                home=home,
            )
        )
        outputs.append(_client("push", f"oci:{image}:v1", ref, home=home))
        outputs.append(_client("pull", ref, f"oci:{tmp_path / 'back'}:v1", home=home))
        stored = (home / "docker" / "config.json").read_text()
        assert alice_password not in stored
    finally:
        server.stop()
        upstream.stop()
    log = server.log()
    assert '"GET /v2/' in log or '"path":"/v2/"' in log  # the access lines were written
    # httpx's own line for the presigned URL the cache followed, with its signature cut out.
    followed = [line for line in log.splitlines() if "HTTP Request:" in line and "X-Amz-" in line]
    assert followed, log
    assert not re.search(r"X-Amz-(Signature|Credential)=(?!REDACTED)", log)
    if log_format == "json":
        for line in log.splitlines():
            if line.strip():
                json.loads(line)
    register_secret(*secrets)  # and the session's end checks every server log for them too
    leaked = sorted(s for s in secrets if s in log or any(s in out for out in outputs))
    assert not leaked, f"secrets in the logs or the client's output: {leaked}"
