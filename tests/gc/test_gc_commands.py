"""`dockyard gc` and `/api/v1/gc` end to end: a dry run changes nothing, a collection removes
the bytes from the disk, the grace delay holds content back, and only administrators may ask."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from dockyard.cli.main import app
from tests.auth.helpers import ADMIN_PASSWORD, basic
from tests.support.push import push_blob, push_image, unique_repo

runner = CliRunner()


def gc(data_dir: Path, *args: str) -> dict:
    result = runner.invoke(app, ["gc", "--json", *args, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def blob_file(data_dir: Path, digest: str) -> Path:
    algorithm, hex_ = digest.split(":")
    return data_dir / "blobs" / algorithm / hex_[:2] / hex_


def test_gc_reclaims_a_deleted_image_and_keeps_the_live_one(start_registry) -> None:
    server = start_registry("--no-gc")
    repo = unique_repo("gc")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        kept_digest, kept_body = push_image(client, repo, "kept")
        gone_digest, gone_body = push_image(client, repo, "gone")
        loose = push_blob(client, repo, os.urandom(1000))  # uploaded, never used
        assert client.delete(f"/v2/{repo}/manifests/{gone_digest}").status_code == 202
        gone = [gone_digest] + [d["digest"] for d in _blobs(gone_body)]
        kept = [kept_digest] + [d["digest"] for d in _blobs(kept_body)]
        assert all(blob_file(server.data_dir, d).exists() for d in gone + kept + [loose])

        # Within the grace delay (an hour by default) nothing goes.
        assert gc(server.data_dir)["blobs"] == 0
        preview = gc(server.data_dir, "--dry-run", "--now")
        assert preview["dry_run"] and sorted(preview["digests"]) == sorted([*gone, loose])
        assert (
            preview["bytes"]
            == sum(blob_file(server.data_dir, d).stat().st_size for d in gone) + 1000
        )
        assert all(blob_file(server.data_dir, d).exists() for d in gone), (
            "a dry run deletes nothing"
        )

        report = gc(server.data_dir, "--now")
        assert sorted(report["digests"]) == sorted([*gone, loose])
        assert report["bytes"] == preview["bytes"] and report["links"] == preview["links"]
        assert not any(blob_file(server.data_dir, d).exists() for d in [*gone, loose])
        assert all(blob_file(server.data_dir, d).exists() for d in kept)
        assert client.get(f"/v2/{repo}/manifests/kept").content == kept_body
        for digest in kept[1:]:
            assert client.get(f"/v2/{repo}/blobs/{digest}").status_code == 200
        assert client.get(f"/v2/{repo}/blobs/{loose}").status_code == 404
        assert gc(server.data_dir, "--now")["blobs"] == 0, "nothing left to collect"


def test_bytes_left_without_a_record_are_found_and_removed(start_registry) -> None:
    server = start_registry("--no-gc")
    # A collector killed between dropping the record and the bytes leaves a file like this.
    data = b"stray bytes"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = blob_file(server.data_dir, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    report = gc(server.data_dir)
    assert report["strays"] == 1 and report["digests"] == [digest]
    assert not path.exists()


def test_the_human_report_names_items_and_bytes(start_registry) -> None:
    server = start_registry("--no-gc")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digest = push_blob(client, unique_repo("gc"), b"x" * 1234)
    result = runner.invoke(app, ["gc", "--now", "--dry-run", "--data-dir", str(server.data_dir)])
    assert result.exit_code == 0, result.output
    assert f"blob\t{digest}" in result.output
    assert "would reclaim 1 blob(s), 1234 bytes; 1 unused link(s)" in result.output
    assert blob_file(server.data_dir, digest).exists()


def test_untagged_manifests_go_only_when_the_setting_says_so(start_registry) -> None:
    server = start_registry("--no-gc", "--gc-untagged-manifests")
    repo = unique_repo("gc")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        digest, _ = push_image(client, repo, "v1")
        push_image(client, repo, "v2")
        assert client.delete(f"/v2/{repo}/manifests/v1").status_code == 202  # the tag only
        assert client.get(f"/v2/{repo}/manifests/{digest}").status_code == 200
        report = gc(server.data_dir, "--now")
        # The command reads the same settings as serve: the environment here.
        assert report["manifests"] == 0, "the command was not told; serve's flag is its own"
        env_report = runner.invoke(
            app,
            ["gc", "--now", "--json", "--data-dir", str(server.data_dir)],
            env={"DOCKYARD_GC_UNTAGGED_MANIFESTS": "true"},
        )
        report = json.loads(env_report.stdout)
        assert report["untagged"] == [f"{repo}@{digest}"]
        assert client.get(f"/v2/{repo}/manifests/{digest}").status_code == 404
        assert client.get(f"/v2/{repo}/manifests/v2").status_code == 200


def test_the_background_job_collects_while_serving(start_registry, tmp_path: Path) -> None:
    # Pushed first without the collector: at grace 0 it may take an uploaded layer before the
    # manifest naming it arrives (the push is then refused, by design), which is not this test.
    data_dir = tmp_path / "collected-while-serving"
    pusher = start_registry("--no-gc", data_dir=data_dir)
    repo = unique_repo("gc")
    with httpx.Client(base_url=pusher.url, timeout=30) as client:
        digest, body = push_image(client, repo, "v1")
    pusher.stop()
    server = start_registry(
        data_dir=data_dir,
        env={"DOCKYARD_GC_GRACE_SECONDS": "0", "DOCKYARD_GC_INTERVAL_SECONDS": "0.2"},
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
        files = [
            blob_file(server.data_dir, d) for d in [digest, *(b["digest"] for b in _blobs(body))]
        ]
        deadline = time.monotonic() + 20
        while any(f.exists() for f in files) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(f.exists() for f in files)


def _pushed_without_collector(start_registry, data_dir: Path) -> tuple[str, list[Path], str]:
    """An image pushed with the collector off (at grace 0 it may take a layer before its
    manifest arrives, by design), then the server stopped: (digest, its files, repository)."""
    pusher = start_registry("--no-gc", data_dir=data_dir)
    repo = unique_repo("gc")
    with httpx.Client(base_url=pusher.url, timeout=30) as client:
        digest, body = push_image(client, repo, "v1")
    pusher.stop()
    files = [blob_file(data_dir, d) for d in [digest, *(b["digest"] for b in _blobs(body))]]
    return digest, files, repo


def _gone_within(files: list[Path], seconds: float) -> float | None:
    """Seconds until none of `files` exists, None if some still do after `seconds`."""
    started = time.monotonic()
    while any(f.exists() for f in files):
        if time.monotonic() - started > seconds:
            return None
        time.sleep(0.05)
    return time.monotonic() - started


def test_the_collector_wakes_when_content_is_due_not_at_its_next_round(
    start_registry, tmp_path: Path
) -> None:
    # An interval of an hour: only the wake-up on due rows can reclaim within the test.
    data_dir = tmp_path / "woken"
    digest, files, repo = _pushed_without_collector(start_registry, data_dir)
    server = start_registry(
        data_dir=data_dir,
        env={"DOCKYARD_GC_GRACE_SECONDS": "0", "DOCKYARD_GC_INTERVAL_SECONDS": "3600"},
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get(f"/v2/{repo}/manifests/v1").status_code == 200, "the first round kept it"
        assert client.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
        assert _gone_within(files, 30) is not None


def test_the_collector_sleeps_until_the_grace_delay_is_over(start_registry, tmp_path: Path) -> None:
    data_dir = tmp_path / "grace"
    digest, files, repo = _pushed_without_collector(start_registry, data_dir)
    server = start_registry(
        data_dir=data_dir,
        env={"DOCKYARD_GC_GRACE_SECONDS": "5", "DOCKYARD_GC_INTERVAL_SECONDS": "3600"},
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.delete(f"/v2/{repo}/manifests/{digest}").status_code == 202
        deleted = time.monotonic()
        assert _gone_within(files, 2) is None, "collected before its grace delay was over"
        assert _gone_within(files, 30) is not None
        assert time.monotonic() - deleted >= 5


def test_the_api_reports_and_collects_for_administrators_only(start_registry) -> None:
    server = start_registry("--auth", "--no-gc", env={"DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD})
    admin = {"Authorization": basic("admin", ADMIN_PASSWORD)}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert (
            client.post(
                "/api/v1/users", json={"name": "alice", "password": "alice-password"}, headers=admin
            ).status_code
            == 201
        )
        alice = {"Authorization": basic("alice", "alice-password")}
        token = client.get(
            "/token", params={"scope": "repository:alice/app:push,pull"}, headers=alice
        )
        bearer = {"Authorization": "Bearer " + token.json()["token"]}
        loose = push_blob_as(client, "alice/app", b"y" * 300, bearer)

        assert client.get("/api/v1/gc").status_code == 401
        for method in ("GET", "POST"):
            denied = client.request(method, "/api/v1/gc", headers=alice)
            assert denied.status_code == 403 and denied.json()["errors"][0]["code"] == "DENIED"
        assert client.get("/api/v1/gc", params={"now": "maybe"}, headers=admin).status_code == 400

        preview = client.get("/api/v1/gc", params={"now": "true"}, headers=admin).json()
        assert preview["dry_run"] and preview["digests"] == [loose] and preview["bytes"] == 300
        assert client.get("/api/v1/gc", headers=admin).json()["digests"] == [], "grace delay"
        # An administrator's access token may read the report, not collect.
        created = client.post(
            "/api/v1/tokens", json={"name": "ops", "scope": "delete"}, headers=admin
        ).json()
        by_token = {"Authorization": basic("admin", created["token"])}
        assert client.get("/api/v1/gc", params={"now": "1"}, headers=by_token).status_code == 200
        refused = client.post("/api/v1/gc", params={"now": "1"}, headers=by_token)
        assert refused.status_code == 403 and refused.json()["errors"][0]["code"] == "DENIED"
        assert blob_file(server.data_dir, loose).exists()

        done = client.post("/api/v1/gc", params={"now": "true"}, headers=admin).json()
        assert not done["dry_run"] and done["digests"] == [loose]
        assert not blob_file(server.data_dir, loose).exists()


def test_a_read_only_registry_collects_nothing(start_registry) -> None:
    env = {
        "DOCKYARD_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "DOCKYARD_GC_GRACE_SECONDS": "0",
        "DOCKYARD_GC_INTERVAL_SECONDS": "0.2",
    }
    writable = start_registry("--no-gc", env=env)
    with httpx.Client(base_url=writable.url, timeout=30) as client:
        loose = push_blob(client, unique_repo("gc"), b"z" * 500)
    writable.stop()
    server = start_registry("--auth", "--read-only", data_dir=writable.data_dir, env=env)
    admin = {"Authorization": basic("admin", ADMIN_PASSWORD)}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        refused = client.post("/api/v1/gc", params={"now": "true"}, headers=admin)
        assert refused.status_code == 405 and refused.json()["errors"][0]["code"] == "UNSUPPORTED"
        preview = client.get("/api/v1/gc", params={"now": "true"}, headers=admin).json()
        assert preview["digests"] == [loose]
    time.sleep(1.5)  # several rounds of the background job, had it run
    assert blob_file(server.data_dir, loose).exists()


def push_blob_as(client: httpx.Client, repo: str, data: bytes, headers: dict) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    resp = client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=headers
    )
    assert resp.status_code == 201, resp.text
    return digest


def _blobs(body: bytes) -> list[dict]:
    manifest = json.loads(body)
    return [manifest["config"], *manifest["layers"]]


def test_a_deleted_repository_s_bytes_are_reclaimed_and_shared_ones_kept(start_registry) -> None:
    """`DELETE /api/v1/repositories/NAME` drops the records at once; the collector then finds
    every blob only that repository held (its manifests, config and layers), and keeps a layer
    another repository still uses."""
    server = start_registry("--no-gc")
    gone_repo, kept_repo = unique_repo("gc"), unique_repo("gc")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        gone_digest, gone_body = push_image(client, gone_repo, "v1")
        kept_digest, kept_body = push_image(client, kept_repo, "v1")
        shared = _blobs(kept_body)[0]["digest"]
        mounted = client.post(f"/v2/{gone_repo}/blobs/uploads/?mount={shared}&from={kept_repo}")
        assert mounted.status_code == 201, mounted.text
        deleted = client.delete(f"/api/v1/repositories/{gone_repo}")
        assert deleted.status_code == 200, deleted.text
        gone = [gone_digest, *(b["digest"] for b in _blobs(gone_body))]
        report = gc(server.data_dir, "--now")
        assert sorted(report["digests"]) == sorted(gone)
        assert not any(blob_file(server.data_dir, d).exists() for d in gone)
        assert client.get(f"/v2/{kept_repo}/manifests/v1").content == kept_body
        assert client.get(f"/v2/{kept_repo}/blobs/{shared}").status_code == 200
        assert kept_digest not in report["digests"]
