"""Retention policies on a running registry: `dockyard policy retention` with a dry run first
on each backend pair, and the background job applying a stored policy."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from dockyard.cli.main import app
from tests.conftest import BACKENDS, backend_env
from tests.support.push import push_image
from tests.support.server import RunningRegistry, free_port


def policy(registry: RunningRegistry, *args: str) -> list[str]:
    """`dockyard policy retention ...` on the running registry's store, run in-process: the
    same code as `python -m dockyard ...` (as tests/auth's `admin`), without an interpreter
    start per command."""
    result = CliRunner().invoke(
        app,
        ["policy", "retention", *args],
        env={**registry.env, "DOCKYARD_DATA_DIR": str(registry.data_dir)},
    )
    assert result.exit_code == 0, (args, result.output)
    return result.stdout.splitlines()


def tags(client: httpx.Client, repo: str) -> list[str]:
    return client.get(f"/v2/{repo}/tags/list").json()["tags"] or []


@pytest.fixture(params=BACKENDS)
def unswept(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningRegistry]:
    """A registry whose background round (collection, retention) runs at start and then once a
    day: on the shared registry a round between `set` and `run` applied the stored policy
    first, and the run found nothing left to remove."""
    env = {
        "DOCKYARD_GC_INTERVAL_SECONDS": "86400",
        "DOCKYARD_UPLOAD_PURGE_INTERVAL_SECONDS": "86400",
    }
    env |= backend_env(request, request.param)
    server = RunningRegistry(
        data_dir=tmp_path / "data", port=free_port(), env=env, log_dir=tmp_path
    ).start()
    yield server
    server.stop()


def test_dry_run_first_then_the_policy_removes_old_tags(unswept: RunningRegistry) -> None:
    with httpx.Client(base_url=unswept.url, timeout=60.0) as client:
        dry_run_first_then_the_policy_removes_old_tags(client, unswept)


def dry_run_first_then_the_policy_removes_old_tags(
    client: httpx.Client, registry: RunningRegistry
) -> None:
    ns = "keep" + uuid.uuid4().hex[:10]
    repo = f"{ns}/app"
    for tag in ("build-1", "build-2", "build-3", "v1.0", "build-4"):
        push_image(client, repo, tag)
    dry = policy(registry, "set", ns, "--keep-last", "2", "--keep", "v*", "--dry-run")
    # The last two pushed are build-4 and v1.0; v*, were it older, would stay too.
    assert [line.split()[2] for line in dry[:-1]] == [
        f"{repo}:build-3",
        f"{repo}:build-2",
        f"{repo}:build-1",
    ]
    assert dry[-1] == "would remove 3 tags"
    assert tags(client, repo) == ["build-1", "build-2", "build-3", "build-4", "v1.0"]
    assert policy(registry, "list", ns) == [], "a dry run stores nothing"
    policy(registry, "set", ns, "--keep-last", "2", "--keep", "v*")
    assert policy(registry, "list", ns) == [f"{ns}: keep the last 2, always keep v*"]
    assert policy(registry, "run", ns, "--dry-run")[-1] == "would remove 3 tags"
    assert tags(client, repo) == ["build-1", "build-2", "build-3", "build-4", "v1.0"]
    assert policy(registry, "run", ns)[-1] == "removed 3 tags"
    assert tags(client, repo) == ["build-4", "v1.0"]
    push_image(client, repo, "build-5")  # v1.0 is now third, and stays as `keep` says
    assert policy(registry, "run", ns)[-1] == "removed 0 tags"
    push_image(client, repo, "build-6")
    assert policy(registry, "run", ns)[-2].split()[1] == f"{repo}:build-4"
    assert tags(client, repo) == ["build-5", "build-6", "v1.0"]
    policy(registry, "remove", ns)
    assert policy(registry, "list", ns) == []


def test_the_background_job_applies_stored_policies(start_registry) -> None:
    server = start_registry(
        env={"DOCKYARD_UPLOAD_PURGE_INTERVAL_SECONDS": "1", "DOCKYARD_GC_INTERVAL_SECONDS": "1"}
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for tag in ("a", "b", "c"):
            push_image(client, "team/app", tag)
        push_image(client, "other/app", "a")
        policy(server, "set", "team/app", "--keep-last", "1")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and tags(client, "team/app") != ["c"]:
            time.sleep(0.2)
        assert tags(client, "team/app") == ["c"]
        assert tags(client, "other/app") == ["a"]
