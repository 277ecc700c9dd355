"""`/api/v1/webhooks` with accounts on: administrators manage webhooks (with their password),
nobody else lists, adds, removes or reads them; the secret is shown once; events name the
account that made the change."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.auth.helpers import (
    ADMIN_PASSWORD,
    AuthRegistry,
    admin_auth,
    basic,
    config_blob,
    manifest_for,
    put_manifest,
    upload_blob,
)
from tests.ops.test_webhooks import FAST, events_of, wait_until
from tests.support.server import RunningRegistry, free_port
from tests.support.webhook_receiver import Receiver, signature_valid

ALICE_PASSWORD = "alice-Pa55word"


@pytest.fixture
def receiver(tmp_path: Path):
    started = Receiver(free_port(), tmp_path / "received.jsonl").start()
    yield started
    started.stop()


@pytest.fixture
def registry(tmp_path: Path):
    server = RunningRegistry(
        tmp_path / "data",
        free_port(),
        args=("--auth",),
        env={
            **FAST,
            "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "DOCKYARD_ANONYMOUS_PULL_LIMIT": "0",
            "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "0",
            "DOCKYARD_LOGIN_FAILURE_LIMIT": "0",
        },
    ).start()
    yield AuthRegistry(server)
    server.stop()


def test_only_administrators_manage_webhooks(registry: AuthRegistry, receiver: Receiver) -> None:
    registry.add_user("alice", ALICE_PASSWORD)
    alice = basic("alice", ALICE_PASSWORD)
    admin_token = registry.create_token("admin", "ci", "delete")
    wanted = {"url": receiver.url + "/hook", "repositories": "alice/*", "actions": ["push"]}
    with registry.client() as client:
        for auth in (alice, None):
            headers = {"Authorization": auth} if auth else {}
            assert client.get("/api/v1/webhooks", headers=headers).status_code in (401, 403)
            made = client.post("/api/v1/webhooks", json=wanted, headers=headers)
            assert made.status_code in (401, 403)
        # An access token is for images, even an administrator's: changes take the password.
        refused = client.post(
            "/api/v1/webhooks", json=wanted, headers={"Authorization": f"Bearer {admin_token}"}
        )
        assert refused.status_code in (401, 403)
        bad = [
            {**wanted, "format": "xml"},
            {**wanted, "actions": ["jump"]},
            {**wanted, "actions": "push"},
            {**wanted, "url": "gopher://x/"},
            {**wanted, "repositories": ""},
            {"repositories": "*"},
        ]
        for body in bad:
            answer = client.post(
                "/api/v1/webhooks", json=body, headers={"Authorization": admin_auth()}
            )
            assert answer.status_code == 400, body
            assert answer.json()["errors"][0]["code"] == "BAD_REQUEST"
        made = client.post("/api/v1/webhooks", json=wanted, headers={"Authorization": admin_auth()})
        assert made.status_code == 201, made.text
        hook = made.json()
        secret = hook["secret"]
        assert hook["format"] == "distribution" and hook["actions"] == ["push"]
        listed = client.get("/api/v1/webhooks", headers={"Authorization": admin_auth()}).json()
        assert [h["id"] for h in listed["webhooks"]] == [hook["id"]]
        assert secret not in json.dumps(listed)

        # Alice pushes into her namespace; the event names her.
        token = registry.bearer("repository:alice/app:pull,push", alice)
        config = config_blob()
        assert upload_blob(client, "alice/app", config, token).status_code == 201
        assert (
            put_manifest(client, "alice/app", "v1", manifest_for(config), token).status_code == 201
        )
        wait_until(lambda: len(events_of(receiver)) >= 1)
        request, event = events_of(receiver)[0]
        assert signature_valid(secret, request)
        assert event["actor"] == {"name": "alice"}
        assert event["target"]["repository"] == "alice/app" and event["target"]["tag"] == "v1"

        path = f"/api/v1/webhooks/{hook['id']}"
        assert client.get(path + "/deliveries", headers={"Authorization": alice}).status_code == 403

        def delivered() -> list:
            answer = client.get(path + "/deliveries", headers={"Authorization": admin_auth()})
            assert answer.status_code == 200
            return answer.json()["deliveries"]

        wait_until(lambda: bool(delivered()))
        assert delivered()[0]["status"] == 200 and delivered()[0]["events"] == 1
        assert client.delete(path, headers={"Authorization": alice}).status_code == 403
        assert client.delete(path, headers={"Authorization": admin_auth()}).status_code == 204
        assert client.delete(path, headers={"Authorization": admin_auth()}).status_code == 404
        gone = client.get(path + "/deliveries", headers={"Authorization": admin_auth()})
        assert gone.status_code == 404
        assert (
            client.get(
                "/api/v1/webhooks/x1/deliveries", headers={"Authorization": admin_auth()}
            ).status_code
            == 404
        )
    # The secret is never written to the server's log.
    time.sleep(0.5)
    assert secret not in registry.server.log()
