"""Issue 13, findings 3, 5, 8 and 15: who may manage accounts through `/api/v1` and the admin
commands, and how that API reads its requests."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import start_auth_registry  # noqa: F401 - the module's registries
from tests.auth.helpers import (
    OCI_MANIFEST,
    SERVICE,
    AuthRegistry,
    admin_auth,
    basic,
    code_of,
    push_image,
)
from tests.support.postgres import PostgresCluster

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def reg(start_auth_registry: Callable[..., AuthRegistry]) -> AuthRegistry:  # noqa: F811
    return start_auth_registry()


def _password_grant(reg: AuthRegistry, user: str, password: str) -> dict[str, Any]:
    response = httpx.post(
        reg.realm,
        data={
            "grant_type": "password",
            "username": user,
            "password": password,
            "service": SERVICE,
            "access_type": "offline",
            "client_id": "test",
            "scope": f"repository:{user}/app:pull",
        },
        timeout=30.0,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _refresh_grant(reg: AuthRegistry, refresh: str) -> httpx.Response:
    return httpx.post(
        reg.realm,
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "service": SERVICE,
            "client_id": "test",
            "scope": "repository:x/app:pull",
        },
        timeout=30.0,
    )


def _tags(c: httpx.Client, repo: str, auth: str) -> httpx.Response:
    return c.get(f"/v2/{repo}/tags/list", headers={"Authorization": auth})


def _gone(c: httpx.Client, repo: str, auth: str | None = None) -> bool:
    """Nothing left to pull: no tag, no manifest (by tag or digest), no blob, not in the
    catalog."""
    headers = {"Authorization": auth or admin_auth(), "Accept": OCI_MANIFEST}
    tags = _tags(c, repo, auth or admin_auth())
    manifest, config = _pushed[repo]
    answers = [
        c.get(f"/v2/{repo}/manifests/v1", headers=headers),
        c.get(f"/v2/{repo}/manifests/{manifest}", headers=headers),
        c.head(f"/v2/{repo}/blobs/{config}", headers=headers),
    ]
    catalog = c.get("/v2/_catalog", headers={"Authorization": admin_auth()}).json()
    return (
        (tags.status_code == 404 or not tags.json()["tags"])
        and all(answer.status_code == 404 for answer in answers)
        and repo not in catalog["repositories"]
    )


def test_finding_03_namespace_holding_repositories_is_claimed_only_by_an_administrator(
    reg: AuthRegistry,
) -> None:
    reg.add_user("squatter", "pw-squatter")
    squatter = basic("squatter", "pw-squatter")
    with reg.client() as c:
        push_image(c, "orphanns/app", "v1")  # by the administrator: no account owns orphanns
        # A name with LIKE wildcards must not match other namespaces' repositories either.
        push_image(c, "wild_ns/app", "v1")
        for name in ("orphanns", "wild_ns"):
            taken = c.post("/api/v1/orgs", json={"name": name}, headers={"Authorization": squatter})
            assert taken.status_code == 403, taken.text
            assert code_of(taken) == "DENIED"
        assert _tags(c, "orphanns/app", squatter).status_code == 401
        assert (
            c.post(
                "/api/v1/orgs", json={"name": "wildxns"}, headers={"Authorization": squatter}
            ).status_code
            == 201
        )
        claimed = c.post(
            "/api/v1/orgs", json={"name": "orphanns"}, headers={"Authorization": admin_auth()}
        )
        assert claimed.status_code == 201


_pushed: dict[str, tuple[str, str]] = {}  # repository -> (manifest, config) digests pushed


def _push_as(reg: AuthRegistry, c: httpx.Client, user: str, password: str) -> None:
    reg.add_user(user, password)
    digest, body = push_image(c, f"{user}/app", "v1", auth=basic(user, password))
    _pushed[f"{user}/app"] = (digest, json.loads(body)["config"]["digest"])
    assert not _gone(c, f"{user}/app")


def test_finding_03_deleting_an_account_with_repositories_asks_what_to_do(
    reg: AuthRegistry,
) -> None:
    with reg.client() as c:
        _push_as(reg, c, "asked", "pw-asked")
        refused = reg.admin("user", "remove", "asked", ok=False)  # stdin is not a terminal
        assert refused.exit_code == 2 and "--repositories" in refused.output
        api = c.delete("/api/v1/users/asked", headers={"Authorization": admin_auth()})
        assert api.status_code == 409 and "repositories" in api.text
        bad = c.delete(
            "/api/v1/users/asked",
            params={"repositories": "transfer"},
            headers={"Authorization": admin_auth()},
        )
        assert bad.status_code == 400
        to_self = c.delete(
            "/api/v1/users/asked",
            params={"repositories": "transfer", "to": "asked"},
            headers={"Authorization": admin_auth()},
        )
        assert to_self.status_code == 400
        assert (
            c.get("/api/v1/me", headers={"Authorization": basic("asked", "pw-asked")}).status_code
            == 200
        )


def test_finding_03_repositories_handed_over_stay_out_of_reach_of_others(reg: AuthRegistry) -> None:
    reg.add_user("heir", "pass-heir")
    reg.add_user("claimer", "pw-claimer")
    with reg.client() as c:
        _push_as(reg, c, "leaving", "pw-leaving")
        done = reg.admin("user", "remove", "leaving", "--repositories", "transfer", "--to", "heir")
        assert "heir" in done.stdout
        assert _tags(c, "leaving/app", basic("heir", "pass-heir")).json()["tags"] == ["v1"]
        assert (
            c.get(
                "/api/v1/me", headers={"Authorization": basic("leaving", "pw-leaving")}
            ).status_code
            == 401
        )
        claim = c.post(
            "/api/v1/orgs",
            json={"name": "leaving"},
            headers={"Authorization": basic("claimer", "pw-claimer")},
        )
        assert claim.status_code == 409
        assert _tags(c, "leaving/app", basic("claimer", "pw-claimer")).status_code == 401
        # The same over the API.
        _push_as(reg, c, "leaving2", "pw-leaving2")
        gone = c.delete(
            "/api/v1/users/leaving2",
            params={"repositories": "transfer", "to": "heir"},
            headers={"Authorization": admin_auth()},
        )
        assert gone.status_code == 204, gone.text
        assert _tags(c, "leaving2/app", basic("heir", "pass-heir")).json()["tags"] == ["v1"]


def test_finding_03_removal_asks_at_a_terminal(reg: AuthRegistry) -> None:
    reg.add_user("taker", "pw-taker")
    with reg.client() as c:
        _push_as(reg, c, "prompted", "pw-prompted")
        terminal, stdin = pty.openpty()
        try:
            os.write(terminal, b"transfer\ntaker\n")
            result = subprocess.run(
                [sys.executable, "-m", "dockyard", "user", "remove", "prompted",
                 "--data-dir", str(reg.data_dir)],
                stdin=stdin, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        finally:
            os.close(stdin)
            os.close(terminal)
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert "delete them, or transfer them" in result.stdout
        assert "now belong to taker" in result.stdout
        assert _tags(c, "prompted/app", basic("taker", "pw-taker")).json()["tags"] == ["v1"]


def test_finding_03_repositories_deleted_with_their_account_leave_nothing_to_claim(
    reg: AuthRegistry,
) -> None:
    reg.add_user("newcomer", "pw-newcomer")
    newcomer = basic("newcomer", "pw-newcomer")
    with reg.client() as c:
        _push_as(reg, c, "quitter", "pw-quitter")
        reg.admin("user", "remove", "quitter", "--repositories", "delete")
        assert _gone(c, "quitter/app")
        # Nothing remains, so the name is free again, and empty.
        assert (
            c.post(
                "/api/v1/orgs", json={"name": "quitter"}, headers={"Authorization": newcomer}
            ).status_code
            == 201
        )
        assert _gone(c, "quitter/app", newcomer)
        _push_as(reg, c, "quitter2", "pw-quitter2")
        api = c.delete(
            "/api/v1/users/quitter2",
            params={"repositories": "delete"},
            headers={"Authorization": admin_auth()},
        )
        assert api.status_code == 204
        assert _gone(c, "quitter2/app")


def test_finding_03_holds_on_postgresql(
    start_auth_registry: Callable[..., AuthRegistry],  # noqa: F811
    pg_cluster: PostgresCluster,
) -> None:
    pg = start_auth_registry(env={"DOCKYARD_METADATA": pg_cluster.create_database()})
    admin = {"Authorization": admin_auth()}
    with pg.client() as c:
        for name in ("pg_owner", "pg_heir", "pg_squat"):
            made = c.post("/api/v1/users", json={"name": name, "password": "pw-" + name},
                          headers=admin)  # fmt: skip
            assert made.status_code == 201
        squat = {"Authorization": basic("pg_squat", "pw-pg_squat")}
        push_image(c, "pg_orphan/app", "v1")
        push_image(c, "pgxorphan/app", "v1")  # what `pg_orphan/` as an unescaped LIKE matches
        assert c.post("/api/v1/orgs", json={"name": "pg_orphan"}, headers=squat).status_code == 403
        push_image(c, "pg_owner/app", "v1", auth=basic("pg_owner", "pw-pg_owner"))
        assert c.delete("/api/v1/users/pg_owner", headers=admin).status_code == 409
        handed = c.delete("/api/v1/users/pg_owner", headers=admin,
                          params={"repositories": "transfer", "to": "pg_heir"})  # fmt: skip
        assert handed.status_code == 204
        assert _tags(c, "pg_owner/app", basic("pg_heir", "pw-pg_heir")).json()["tags"] == ["v1"]
        assert c.post("/api/v1/orgs", json={"name": "pg_owner"}, headers=squat).status_code == 409
        emptied = c.delete("/api/v1/users/pg_owner", headers=admin,
                           params={"repositories": "delete"})  # fmt: skip
        assert emptied.status_code == 204
        assert _tags(c, "pgxorphan/app", admin_auth()).json()["tags"] == ["v1"]
        assert c.get("/v2/pg_owner/app/manifests/v1", headers=admin).status_code == 404
        assert c.post("/api/v1/orgs", json={"name": "pg_owner"}, headers=squat).status_code == 201


# -- finding 5: scopes on /api/v1 -----------------------------------------------------------
def test_finding_05_refresh_token_cannot_manage_account(reg: AuthRegistry) -> None:
    reg.add_user("victim", "pw-victim")
    with reg.client() as c:
        push_image(c, "victim/app", "v1", auth=basic("victim", "pw-victim"))
    time.sleep(1.1)  # refresh tokens from the second the account was made are refused
    refresh = _password_grant(reg, "victim", "pw-victim")["refresh_token"]
    minted = _refresh_grant(reg, refresh)
    assert minted.status_code == 200
    bearer = {"Authorization": "Bearer " + minted.json()["token"]}
    with reg.client() as c:
        assert c.get("/api/v1/me", headers=bearer).json()["name"] == "victim"
        attempts = [
            c.post("/api/v1/tokens", json={"name": "forever", "scope": "delete"}, headers=bearer),
            c.get("/api/v1/tokens", headers=bearer),
            c.put("/api/v1/users/victim", json={"password": "pwned"}, headers=bearer),
            c.put(
                "/api/v1/users/victim",
                json={"password": "pwned", "current_password": "wrong"},
                headers=bearer,
            ),
            c.post("/api/v1/orgs", json={"name": "victimorg"}, headers=bearer),
            c.put(
                "/api/v1/repositories/victim/app/visibility",
                json={"visibility": "public"},
                headers=bearer,
            ),
        ]
        for response in attempts:
            assert response.status_code == 403, response.request.url
            assert code_of(response) == "DENIED"
        assert (
            c.get("/api/v1/me", headers={"Authorization": basic("victim", "pw-victim")}).status_code
            == 200
        )
        assert c.get("/v2/victim/app/tags/list").status_code == 401  # still private
        # An administrator's bearer token does not administer users either.
        admin_refresh = _password_grant(reg, "admin", "admin-Pa55word")["refresh_token"]
        admin_bearer = {
            "Authorization": "Bearer " + _refresh_grant(reg, admin_refresh).json()["token"]
        }
        assert (
            c.post(
                "/api/v1/users",
                json={"name": "sneaky", "password": "x", "admin": True},
                headers=admin_bearer,
            ).status_code
            == 403
        )
        assert c.delete("/api/v1/users/victim", headers=admin_bearer).status_code == 403


def test_finding_05_password_change_needs_current_password_and_ends_refresh_tokens(
    reg: AuthRegistry,
) -> None:
    reg.add_user("changer", "pw-changer")
    own = {"Authorization": basic("changer", "pw-changer")}
    refresh = _password_grant(reg, "changer", "pw-changer")["refresh_token"]
    with reg.client() as c:
        missing = c.put("/api/v1/users/changer", json={"password": "pass-next"}, headers=own)
        assert missing.status_code == 400
        wrong = c.put(
            "/api/v1/users/changer",
            json={"password": "pass-next", "current_password": "nope"},
            headers=own,
        )
        assert wrong.status_code == 403
        time.sleep(1.1)  # a refresh token from an earlier second than the change
        done = c.put(
            "/api/v1/users/changer",
            json={"password": "pass-next", "current_password": "pw-changer"},
            headers=own,
        )
        assert done.status_code == 204
    assert _refresh_grant(reg, refresh).status_code == 401
    assert _password_grant(reg, "changer", "pass-next")["refresh_token"]


def test_finding_05_read_token_cannot_revoke_other_tokens(reg: AuthRegistry) -> None:
    reg.add_user("holder", "pw-holder")
    read = reg.create_token("holder", "reader", "read")
    reg.create_token("holder", "deployer", "write")
    with_read = {"Authorization": basic("holder", read)}
    with reg.client() as c:
        refused = c.delete("/api/v1/tokens/deployer", headers=with_read)
        assert refused.status_code == 403 and code_of(refused) == "DENIED"
        assert c.get("/api/v1/tokens", headers=with_read).status_code == 403
        listed = c.get("/api/v1/tokens", headers={"Authorization": basic("holder", "pw-holder")})
        assert {t["name"]: t["revoked"] for t in listed.json()["tokens"]} == {
            "reader": False,
            "deployer": False,
        }
        # A token may still end itself, and only itself, even when named after another's id.
        deployer = next(t["id"] for t in listed.json()["tokens"] if t["name"] == "deployer")
        decoy = {"Authorization": basic("holder", reg.create_token("holder", deployer, "read"))}
        assert c.delete(f"/api/v1/tokens/{deployer}", headers=decoy).status_code == 204
        assert c.delete("/api/v1/tokens/reader", headers=with_read).status_code == 204
        assert c.get("/api/v1/me", headers=with_read).status_code == 401
        listed = c.get("/api/v1/tokens", headers={"Authorization": basic("holder", "pw-holder")})
        assert {t["name"]: t["revoked"] for t in listed.json()["tokens"]} == {
            "reader": True,
            "deployer": False,
            deployer: True,
        }


def test_finding_05_delete_token_cannot_administer_organisations(reg: AuthRegistry) -> None:
    reg.add_user("orgboss", "pw-orgboss")
    reg.add_user("outsider", "pw-outsider")
    reg.admin("org", "create", "bossorg", "--owner", "orgboss")
    with reg.client() as c:
        push_image(c, "bossorg/app", "v1", auth=basic("orgboss", "pw-orgboss"))
    delete = {"Authorization": basic("orgboss", reg.create_token("orgboss", "ci", "delete"))}
    with reg.client() as c:
        attempts = [
            c.put("/api/v1/orgs/bossorg/members/outsider", json={"role": "owner"}, headers=delete),
            c.delete("/api/v1/orgs/bossorg/members/orgboss", headers=delete),
            c.put(
                "/api/v1/repositories/bossorg/app/visibility",
                json={"visibility": "public"},
                headers=delete,
            ),
            c.post("/api/v1/orgs", json={"name": "tokenorg"}, headers=delete),
            c.post("/api/v1/tokens", json={"name": "more", "scope": "delete"}, headers=delete),
        ]
        for response in attempts:
            assert response.status_code == 403, response.request.url
        assert _tags(c, "bossorg/app", basic("outsider", "pw-outsider")).status_code == 401
        # The delete token still does what its scope says: registry deletes.
        assert c.delete("/v2/bossorg/app/manifests/v1", headers=delete).status_code == 202


# -- finding 8: bounded bodies ------------------------------------------------------------------
def _group_memory(pgid: int) -> dict[int, tuple[int, int]]:
    """pid -> (VmRSS, VmHWM) in KiB for every process of the server's process group."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            fields = dict(
                line.split(":", 1)
                for line in (entry / "status").read_text().splitlines()
                if ":" in line
            )
            found[int(entry.name)] = (
                int(fields["VmRSS"].split()[0]),
                int(fields["VmHWM"].split()[0]),
            )
        except (OSError, ProcessLookupError, KeyError, ValueError):
            continue
    return found


def _raw_request(
    reg: AuthRegistry, head: str, body_chunks: int, chunk: bytes, chunked: bool
) -> tuple[bytes, int]:
    """Send `head`, then up to `body_chunks` chunks until the server answers; the answer's first
    bytes and how much body went out."""
    sock = socket.create_connection(("127.0.0.1", reg.server.port), timeout=20)
    sent = 0
    try:
        sock.sendall(head.encode())
        for _ in range(body_chunks):
            if select.select([sock], [], [], 0)[0]:
                break
            data = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") if chunked else chunk
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            sent += len(chunk)
        try:
            answer = sock.recv(4096)
        except (ConnectionResetError, TimeoutError):
            answer = b""
        return answer, sent
    finally:
        sock.close()


def test_finding_08_account_api_body_is_bounded_while_streaming(reg: AuthRegistry) -> None:
    assert reg.server.proc is not None
    pgid = reg.server.proc.pid
    with reg.client() as c:  # warm every worker up: bcrypt, imports
        for _ in range(4):
            c.get("/api/v1/me", headers={"Authorization": admin_auth()})
    before = _group_memory(pgid)
    head = (
        f"POST /api/v1/users HTTP/1.1\r\nHost: {reg.host}\r\n"
        f"Authorization: {admin_auth()}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    answer, sent = _raw_request(reg, head, 200, b"[" * MiB, chunked=True)
    after = _group_memory(pgid)
    grown = max(after[pid][1] - before[pid][1] for pid in after if pid in before)
    assert grown < 64 * 1024, f"a worker grew by {grown} KiB after {sent} bytes"
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"errors"' in answer or sent < 200 * MiB


def test_finding_08_oversized_content_length_is_refused_at_once(reg: AuthRegistry) -> None:
    for path, content_type in (
        ("/api/v1/users", "application/json"),
        ("/token", "application/x-www-form-urlencoded"),
    ):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {reg.host}\r\n"
            f"Authorization: {admin_auth()}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {400 * MiB}\r\n\r\n"
        )
        started = time.monotonic()
        answer, _ = _raw_request(reg, head, 1, b"{", chunked=False)
        assert answer.startswith(b"HTTP/1.1 413"), (path, answer[:200])
        assert b'"UNSUPPORTED"' in answer
        assert time.monotonic() - started < 15


# -- finding 15: browsers ---------------------------------------------------------------------
def test_finding_15_account_api_challenges_with_bearer(reg: AuthRegistry) -> None:
    with reg.client() as c:
        for response in (
            c.get("/api/v1/me"),
            c.get("/api/v1/me", headers={"Authorization": basic("admin", "bad")}),
        ):
            assert response.status_code == 401
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith("Bearer realm=") and "Basic" not in challenge


def test_finding_15_account_api_needs_a_json_body(reg: AuthRegistry) -> None:
    admin = {"Authorization": admin_auth()}
    body = '{"name": "formmade", "password": "pw-formmade", "admin": true}'
    with reg.client() as c:
        for content_type in (
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            None,
        ):
            headers = {**admin, **({"Content-Type": content_type} if content_type else {})}
            response = c.post("/api/v1/users", content=body, headers=headers)
            assert response.status_code == 415, (content_type, response.text)
            assert code_of(response) == "UNSUPPORTED"
        listed = c.get("/api/v1/users", headers=admin).json()["users"]
        assert "formmade" not in [u["name"] for u in listed]
        made = c.post(
            "/api/v1/users",
            content=body,
            headers={**admin, "Content-Type": "application/json; charset=utf-8"},
        )
        assert made.status_code == 201


def test_finding_15_account_api_refuses_other_origins(reg: AuthRegistry) -> None:
    admin = {"Authorization": admin_auth()}
    with reg.client() as c:
        for origin in (
            "https://evil.example",
            "null",
            "http://[::1",
            f"http://127.0.0.1:{reg.server.port}x",
            f"http://127.0.0.1.evil.example:{reg.server.port}",
        ):
            response = c.post(
                "/api/v1/users",
                json={"name": "crosssite", "password": "x"},
                headers={**admin, "Origin": origin},
            )
            assert response.status_code == 403, origin
            assert code_of(response) == "DENIED"
        assert (
            c.get("/api/v1/me", headers={**admin, "Origin": "https://evil.example"}).status_code
            == 403
        )
        same = c.post(
            "/api/v1/users",
            json={"name": "samesite", "password": "pw-samesite"},
            headers={**admin, "Origin": reg.url},
        )
        assert same.status_code == 201


def test_finding_08_malformed_bodies_get_the_spec_error(reg: AuthRegistry) -> None:
    admin = {"Authorization": admin_auth(), "Content-Type": "application/json"}
    with reg.client() as c:
        for body in (b"[" * 60_000, b"\xff\xfe", b"[]", b'"x"', b"{"):
            response = c.post("/api/v1/orgs", content=body, headers=admin)
            assert response.status_code == 400, (body[:10], response.text)
            assert code_of(response) == "BAD_REQUEST"
