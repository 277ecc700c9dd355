"""What a webhook receives: CNCF Distribution's envelope checked field by field against its
documented format (docs/content/about/notifications.md of distribution/distribution), CloudEvents
1.0, the filters, pull events, the SSRF refusal, and who may manage webhooks."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from dockyard.core.errors import RegistryError
from dockyard.service.webhook_urls import refusal
from tests.ops.test_webhooks import FAST, add_webhook, dockyard, events_of, wait_until
from tests.support.push import OCI_MANIFEST, push_image
from tests.support.server import RunningRegistry, free_port
from tests.support.webhook_receiver import Receiver, signature_valid

EVENT_KEYS = {"id", "timestamp", "action", "target", "request", "actor", "source"}
REQUEST_KEYS = {"id", "addr", "host", "method", "useragent"}
AGENT = "events-test/1.0"


@pytest.fixture
def receiver(tmp_path: Path):
    started = Receiver(free_port(), tmp_path / "received.jsonl").start()
    yield started
    started.stop()


def serve(tmp_path: Path, **env: str) -> RunningRegistry:
    return RunningRegistry(tmp_path / "data", free_port(), env={**FAST, **env}).start()


def rfc3339(text: str) -> datetime:
    parsed = datetime.fromisoformat(text)
    assert parsed.tzinfo is not None
    return parsed


def test_distribution_envelope_field_by_field(tmp_path: Path, receiver: Receiver) -> None:
    registry = serve(tmp_path, DOCKYARD_EVENT_PULLS="true")
    try:
        hook = add_webhook(registry, receiver.url + "/events")
        repo = "env/app"
        headers = {"User-Agent": AGENT, "X-Request-ID": "req-" + uuid.uuid4().hex}
        started = time.time()
        with httpx.Client(base_url=registry.url, timeout=30, headers=headers) as client:
            digest, body = push_image(client, repo, "v1")
            assert client.head(f"/v2/{repo}/manifests/v1").status_code == 200  # no event
            pulled = client.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
            assert pulled.status_code == 200
            assert client.delete(f"/v2/{repo}/manifests/v1").status_code == 202
            assert client.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
            push_image(client, repo, "v2")
            assert client.delete(f"/api/v1/repositories/{repo}").status_code == 200
        wait_until(lambda: len(events_of(receiver)) >= 6)
        time.sleep(1)
        received = events_of(receiver)
        events = [event for _, event in received]
        # Changes arrive in the order they were made. Pulls change nothing and are written in
        # batches a moment later (docs/operations.md), so the pull is looked for on its own.
        changes = [e for e in events if e["action"] != "pull"]
        assert [(e["action"], e["target"].get("tag")) for e in changes] == [
            ("push", "v1"),
            ("delete", "v1"),
            ("delete", None),
            ("push", "v2"),
            ("delete", None),
        ]
        pulls = [e for e in events if e["action"] == "pull"]
        assert len(pulls) == 1  # the GET; the HEAD sent none
        for request, _ in received:
            assert request["path"] == "/events"
            assert request["headers"]["content-type"] == (
                "application/vnd.docker.distribution.events.v1+json"
            )
            assert set(json.loads(request["body"])) == {"events"}
            assert signature_valid(hook["secret"], request)
        assert len({e["id"] for e in events}) == len(events)
        push, untag, delete, _, removed = changes
        (pull,) = pulls
        for event in events:
            # A pull event stands for the pulls one client made within a window: `count`.
            assert set(event) == EVENT_KEYS | ({"count"} if event["action"] == "pull" else set())
            uuid.UUID(event["id"])
            assert started - 1 <= rfc3339(event["timestamp"]).timestamp() <= time.time()
            assert set(event["request"]) == REQUEST_KEYS
            method = {"push": "PUT", "pull": "GET", "delete": "DELETE"}[event["action"]]
            assert event["request"]["method"] == method
            assert event["request"]["useragent"] == AGENT
            assert event["request"]["id"] == headers["X-Request-ID"]
            assert event["request"]["host"] == registry.host
            assert event["request"]["addr"].startswith("127.0.0.1:")
            assert event["actor"] == {}  # no accounts: nobody to name
            assert set(event["source"]) == {"addr", "instanceID"}
            assert event["source"]["addr"] == registry.host
            uuid.UUID(event["source"]["instanceID"])
        assert pull["count"] == 1
        # When it happened, not when it was written.
        assert push["timestamp"] <= pull["timestamp"] <= untag["timestamp"]
        for event in (push, pull):
            assert event["target"] == {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(body),
                "length": len(body),  # the older name of size, still sent
                "repository": repo,
                "url": f"{registry.url}/v2/{repo}/manifests/{digest}",
                "tag": "v1",
            }
        # Deletes name only what was deleted, as Distribution's do.
        assert untag["target"] == {"repository": repo, "tag": "v1"}
        assert delete["target"] == {"repository": repo, "digest": digest}
        assert removed["target"] == {"repository": repo}
    finally:
        registry.stop()


def test_cloudevents_and_filters(tmp_path: Path, receiver: Receiver) -> None:
    registry = serve(tmp_path)
    try:
        everything = add_webhook(registry, receiver.url + "/all")
        only = add_webhook(
            registry,
            receiver.url + "/cloud",
            "--format",
            "cloudevents",
            "--repositories",
            "keep/*",
            "--actions",
            "delete",
        )
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            push_image(client, "keep/a", "v1")
            push_image(client, "other/b", "v1")
            assert client.delete("/v2/other/b/manifests/v1").status_code == 202
            assert client.delete("/v2/keep/a/manifests/v1").status_code == 202
        wait_until(lambda: len([r for r in receiver.requests() if r["path"] == "/cloud"]) >= 1)
        wait_until(
            lambda: (
                sum(
                    len(json.loads(r["body"])["events"])
                    for r in receiver.requests()
                    if r["path"] == "/all"
                )
                >= 4
            )
        )
        time.sleep(1)
        cloud = [r for r in receiver.requests() if r["path"] == "/cloud"]
        assert len(cloud) == 1
        assert cloud[0]["headers"]["content-type"] == "application/cloudevents+json; charset=utf-8"
        assert signature_valid(only["secret"], cloud[0])
        assert not signature_valid(everything["secret"], cloud[0])
        event = json.loads(cloud[0]["body"])
        assert event["specversion"] == "1.0"
        uuid.UUID(event["id"])
        assert event["source"] == registry.url
        assert event["type"] == "io.dockyard.image.delete"
        assert event["subject"] == "keep/a:v1"
        rfc3339(event["time"])
        assert event["datacontenttype"] == "application/json"
        assert event["data"] == {"repository": "keep/a", "tag": "v1"}
        # The same event, in the other webhook's envelope, under the same id.
        everything_ids = [
            e["id"]
            for r in receiver.requests()
            if r["path"] == "/all"
            for e in json.loads(r["body"])["events"]
        ]
        assert len(everything_ids) == 4 and event["id"] in everything_ids
    finally:
        registry.stop()


def refused_add(registry: RunningRegistry, url: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "webhook",
            "add",
            url,
            "--data-dir",
            str(registry.data_dir),
        ],
        env={**os.environ, "DOCKYARD_WEBHOOK_ALLOW_LOOPBACK": "false"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    return done.stderr


def test_loopback_and_link_local_refused_at_creation_and_delivery(
    tmp_path: Path, receiver: Receiver
) -> None:
    registry = serve(tmp_path, DOCKYARD_WEBHOOK_ALLOW_LOOPBACK="false")
    try:
        assert "loopback or link-local" in refused_add(registry, receiver.url + "/hook")
        assert "a webhook URL is http" in refused_add(registry, "ftp://example.org/")
        # The command and /api/v1/webhooks ask the same check.
        for url in (
            "http://localhost:9/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:8080/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0:80/",
        ):
            assert "loopback or link-local" in (asyncio.run(refusal(url, False)) or ""), url
            assert asyncio.run(refusal(url, True)) is None
        for url in ("http:///nohost", "not a url", "http://[::1/"):
            with pytest.raises(RegistryError):
                asyncio.run(refusal(url, True))
        assert dockyard(registry, "webhook", "list", "--json") == []
        # Allowed when it was added (by a command run with the setting on) but not by the
        # server: refused again at delivery, and nothing is sent.
        hook = add_webhook(
            registry, receiver.url + "/hook", env={"DOCKYARD_WEBHOOK_ALLOW_LOOPBACK": "true"}
        )
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            push_image(client, "ssrf/app", "v1")

        def refused() -> bool:
            log = dockyard(registry, "webhook", "deliveries", str(hook["id"]), "--json")
            return bool(log) and "loopback or link-local" in (log[0]["error"] or "")

        wait_until(refused)
        assert receiver.requests() == []
        listed = dockyard(registry, "webhook", "list", "--json")[0]
        assert listed["pending"] == 1 and listed["delivered"] == 0
        assert "secret" not in listed
    finally:
        registry.stop()


def test_redirects_are_not_followed(tmp_path: Path) -> None:
    receiver = Receiver(free_port(), tmp_path / "received.jsonl", redirects=2).start()
    registry = serve(tmp_path)
    try:
        hook = add_webhook(registry, receiver.url + "/hook")
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            push_image(client, "redirect/app", "v1")
        wait_until(lambda: len(receiver.requests()) >= 1)
        # Two 307s counted as failures and retried at the webhook's own URL; never followed.
        assert [r["path"] for r in receiver.requests()] == ["/hook"]
        log = dockyard(registry, "webhook", "deliveries", str(hook["id"]), "--json")
        assert [(d["attempt"], d["status"]) for d in reversed(log)] == [
            (1, 307),
            (2, 307),
            (3, 200),
        ]
        assert log[-1]["error"] == "answered 307"
    finally:
        registry.stop()
        receiver.stop()
