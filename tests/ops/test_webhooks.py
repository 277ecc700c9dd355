"""Events delivered to a real webhook receiver (a separate process): every push and delete
arrives once after de-duplication by event id, in order per repository, signed, through a
receiver that fails its first requests and is down while the registry is killed and restarted
-- on both backend pairs, with two server processes delivering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BACKENDS, s3_postgres_env
from tests.support.push import push_image
from tests.support.server import RunningRegistry, free_port, wait_for_http
from tests.support.webhook_receiver import Receiver, signature_valid

FAST = {
    "DOCKYARD_WEBHOOK_ALLOW_LOOPBACK": "true",
    "DOCKYARD_WEBHOOK_RETRY_SECONDS": "0.2",
    "DOCKYARD_WEBHOOK_MAX_RETRY_SECONDS": "1",
    "DOCKYARD_WEBHOOK_TIMEOUT_SECONDS": "2",
    "DOCKYARD_LOG_REQUESTS": "false",
}


def backend_env(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    if backend == "s3+postgresql":
        return s3_postgres_env(
            request.getfixturevalue("s3_server"),
            request.getfixturevalue("pg_cluster"),
            redirect=False,
        )
    return {}


def dockyard(registry: RunningRegistry, *args: str, env: dict[str, str] | None = None) -> Any:
    """A `dockyard` command on the registry's store (while it serves); its JSON output."""
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", *args, "--data-dir", str(registry.data_dir)],
        env={**os.environ, **registry.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if "--json" in args else done.stdout


def add_webhook(
    registry: RunningRegistry, url: str, *options: str, env: dict[str, str] | None = None
) -> dict[str, Any]:
    return dockyard(registry, "webhook", "add", url, "--json", *options, env=env)  # type: ignore[no-any-return]


def events_of(receiver: Receiver) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(request, event) for every event of every request the receiver kept, in arrival order."""
    return [
        (request, event)
        for request in receiver.requests()
        for event in json.loads(request["body"])["events"]
    ]


def wait_until(done: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def restart(registry: RunningRegistry) -> None:
    """Start it again; two workers on a loaded 2-core machine may take longer than the usual
    wait for their first answer (the process is still starting, not failed)."""
    try:
        registry.start()
    except TimeoutError:
        wait_for_http(registry.url + "/v2/", timeout=90, proc=registry.proc)


def unique(receiver: Receiver) -> dict[str, dict[str, Any]]:
    """The receiver's events de-duplicated by id, first arrival kept (dicts keep order)."""
    seen: dict[str, dict[str, Any]] = {}
    for _, event in events_of(receiver):
        seen.setdefault(event["id"], event)
    return seen


def summary(event: dict[str, Any]) -> tuple[str, ...]:
    target = event["target"]
    return (event["action"], target.get("tag", ""), target.get("digest", ""))


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_event_arrives_once_in_order_through_failures_and_restarts(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    receiver = Receiver(free_port(), tmp_path / "received.jsonl", failures=3).start()
    env = {**backend_env(request, backend), **FAST, "DOCKYARD_WORKERS": "2"}
    registry = RunningRegistry(tmp_path / "data", free_port(), env=env).start()
    try:
        secret = add_webhook(registry, receiver.url + "/hook")["secret"]
        expected: dict[str, list[tuple[str, ...]]] = {"ops/one": [], "ops/two": []}

        def push(client: httpx.Client, repo: str, tag: str) -> str:
            digest, _ = push_image(client, repo, tag)
            expected[repo].append(("push", tag, digest))
            return digest

        with httpx.Client(base_url=registry.url, timeout=30) as client:
            for i in range(3):
                push(client, "ops/one", f"v{i}")
                push(client, "ops/two", f"v{i}")
            wait_until(lambda: len(unique(receiver)) >= 2)  # delivery under way
        receiver.stop()  # down: what follows waits in the outbox
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            gone = push(client, "ops/one", "doomed")
            assert client.delete("/v2/ops/one/manifests/doomed").status_code == 202
            expected["ops/one"].append(("delete", "doomed", ""))
            push(client, "ops/two", "v9")
        registry.kill()  # a crash: nothing is flushed
        restart(registry)
        receiver = Receiver(receiver.port, receiver.log).start()
        with httpx.Client(base_url=registry.url, timeout=30) as client:
            assert client.delete(f"/v2/ops/one/manifests/{gone}").status_code == 202
            expected["ops/one"].append(("delete", "", gone))
            push(client, "ops/two", "v10")
        total = sum(len(v) for v in expected.values())
        wait_until(lambda: len(unique(receiver)) >= total)
        time.sleep(1)  # anything more that would still come (it must not)
        events = unique(receiver)
        assert len(events) == total
        for repo, wanted in expected.items():
            got = [summary(e) for e in events.values() if e["target"]["repository"] == repo]
            assert got == wanted, repo
        for req in receiver.requests():
            assert signature_valid(secret, req)
            assert req["headers"]["content-type"] == (
                "application/vnd.docker.distribution.events.v1+json"
            )
        hooks = dockyard(registry, "webhook", "list", "--json")
        assert hooks[0]["pending"] == 0 and hooks[0]["delivered"] >= total
        log = dockyard(registry, "webhook", "deliveries", str(hooks[0]["id"]), "--json")
        # Newest first: the last attempt succeeded; failures (503s, a receiver away) are kept.
        assert log[0]["status"] == 200 and log[0]["error"] is None
        assert any(d["error"] for d in log)
    finally:
        registry.stop()
        receiver.stop()
