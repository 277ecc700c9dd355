"""Pull events through a real server with two workers and a real receiver: every pull is counted
in exactly one event's `count`, per account, whichever worker answered it; and pulls still in a
worker's window when it gets SIGTERM are written as it stops and delivered after the restart."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.auth.helpers import ADMIN_PASSWORD, AuthRegistry, admin_auth, basic, push_image
from tests.ops.test_webhooks import FAST, add_webhook, restart, unique, wait_until
from tests.support.push import OCI_MANIFEST
from tests.support.server import RunningRegistry, free_port, register_secret
from tests.support.webhook_receiver import Receiver, signature_valid

PASSWORDS = {"alice": "alice-Pulls-pw1", "bob": "bob-Pulls-pw22"}
register_secret(*PASSWORDS.values())
PULLS = {"alice": 90, "bob": 60, "": 30}  # "": anonymous
REPO = "admin/app"


def start(tmp_path: Path, window: str) -> AuthRegistry:
    env = {
        **FAST,
        "DOCKYARD_WORKERS": "2",
        "DOCKYARD_EVENT_PULLS": "true",
        "DOCKYARD_EVENT_PULLS_WINDOW_SECONDS": window,
        "DOCKYARD_DEFAULT_VISIBILITY": "public",
        "DOCKYARD_ANONYMOUS_PULL_LIMIT": "0",
        "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "0",
        "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    server = RunningRegistry(tmp_path / "data", free_port(), args=("--auth",), env=env).start()
    return AuthRegistry(server)


def set_up(registry: AuthRegistry, receiver: Receiver) -> str:
    """Users, an image, a webhook for pulls only; the webhook's secret."""
    for name, password in PASSWORDS.items():
        made = httpx.post(
            f"{registry.url}/api/v1/users",
            json={"name": name, "password": password},
            headers={"Authorization": admin_auth()},
        )
        assert made.status_code == 201, made.text
    with registry.client() as client:
        push_image(client, REPO, "v1")
    return str(add_webhook(registry.server, receiver.url + "/pulls", "--actions", "pull")["secret"])


def pull_concurrently(registry: AuthRegistry) -> None:
    """Each puller on three connections of its own at once, so both workers answer some."""
    auths = {
        name: registry.bearer(f"repository:{REPO}:pull", basic(name, password))
        for name, password in PASSWORDS.items()
    }
    failures: list[str] = []

    def pull(actor: str, times: int) -> None:
        headers = {"Accept": OCI_MANIFEST}
        if actor:
            headers["Authorization"] = auths[actor]
        with httpx.Client(base_url=registry.url, timeout=60, headers=headers) as client:
            for _ in range(times):
                got = client.get(f"/v2/{REPO}/manifests/v1")
                if got.status_code != 200:
                    failures.append(f"{actor}: {got.status_code} {got.text}")

    threads = [
        threading.Thread(target=pull, args=(actor, times // 3))
        for actor, times in PULLS.items()
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def pulls_received(receiver: Receiver) -> Counter[str]:
    counted: Counter[str] = Counter()
    for event in unique(receiver).values():
        assert event["action"] == "pull"
        counted[event["actor"].get("name", "")] += event["count"]
    return counted


def test_every_pull_counted_once_per_account_across_two_workers(tmp_path: Path) -> None:
    receiver = Receiver(free_port(), tmp_path / "received.jsonl").start()
    registry = start(tmp_path, "1")
    try:
        secret = set_up(registry, receiver)
        pull_concurrently(registry)
        wait_until(lambda: sum(pulls_received(receiver).values()) >= sum(PULLS.values()))
        time.sleep(1.5)  # nothing more arrives
        assert pulls_received(receiver) == PULLS
        for request in receiver.requests():
            assert signature_valid(secret, request)
        events = list(unique(receiver).values())
        # Counted per puller, not one event per pull.
        assert len(events) < sum(PULLS.values())
        assert max(event["count"] for event in events) > 1
        for event in events:
            assert event["target"]["repository"] == REPO and event["target"]["tag"] == "v1"
            assert event["request"]["method"] == "GET"
    finally:
        registry.server.stop()
        receiver.stop()


def test_pulls_in_the_window_at_sigterm_are_delivered_after_the_restart(tmp_path: Path) -> None:
    receiver = Receiver(free_port(), tmp_path / "received.jsonl").start()
    # A window far longer than the test: only the graceful stop can write these pulls.
    registry = start(tmp_path, "60")
    try:
        set_up(registry, receiver)
        pull_concurrently(registry)
        assert pulls_received(receiver) == {}
        registry.server.stop()  # SIGTERM: each worker writes its window as it stops
        assert pulls_received(receiver) == {}
        restart(registry.server)
        wait_until(lambda: sum(pulls_received(receiver).values()) >= sum(PULLS.values()))
        assert pulls_received(receiver) == PULLS
    finally:
        registry.server.stop()
        receiver.stop()
