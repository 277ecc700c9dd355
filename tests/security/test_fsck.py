"""Finding 1 (issue 13), the proof side: `dockyard fsck [--repair]` re-hashes every blob and
follows every link, manifest reference and tag; --repair quarantines bad blobs, after which
the registry answers BLOB_UNKNOWN for them (never wrong bytes) until the real content is
pushed again."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import obstore
from obstore.store import S3Store

from tests.conftest import s3_postgres_env
from tests.support.fsck import run_fsck as fsck
from tests.support.push import error_code, push_blob, push_image, sha256, unique_repo
from tests.support.server import RunningRegistry


def blob_file(data_dir: Path, digest: str) -> Path:
    algorithm, hex_ = digest.split(":")
    return data_dir / "blobs" / algorithm / hex_[:2] / hex_


def assert_quarantines_and_heals(
    server: RunningRegistry, env: dict[str, str], corrupt: Callable[[str, bytes], None]
) -> None:
    repo = unique_repo("fsck")
    with httpx.Client(base_url=server.url, timeout=60) as c:
        push_image(c, repo, "v1")
        good = os.urandom(300 * 1024)
        digest = push_blob(c, repo, good)
        clean = fsck(server.data_dir, env=env)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "0 bad blobs, 0 problems" in clean.stdout

        corrupt(digest, os.urandom(len(good)))
        found = fsck(server.data_dir, env=env)
        assert found.returncode == 1
        assert f"bad-blob\t-\t{digest}" in found.stdout
        assert "1 bad blobs" in found.stdout
        # What leads to it says it is corrupt, not missing.
        assert f"dangling-link\t{repo}\t{digest}\tlinked blob is corrupt" in found.stdout
        # Only reported: still there.
        assert "quarantined" not in found.stdout

        repaired = fsck(server.data_dir, "--repair", env=env)
        assert repaired.returncode == 1
        assert f"quarantined\t{digest}\t" in repaired.stdout
        response = c.get(f"/v2/{repo}/blobs/{digest}")
        assert response.status_code == 404 and error_code(response) == "BLOB_UNKNOWN"
        assert c.head(f"/v2/{repo}/blobs/{digest}").status_code == 404

        after = fsck(server.data_dir, env=env)
        assert after.returncode == 0, after.stdout
        assert "0 bad blobs" in after.stdout

        # The owner pushes the real content again and gets exactly it back.
        assert push_blob(c, repo, good) == digest
        assert c.get(f"/v2/{repo}/blobs/{digest}").content == good
        assert fsck(server.data_dir, env=env).returncode == 0


def test_finding_01_fsck_quarantines_a_corrupt_blob_filesystem(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    server = start_registry()

    def corrupt(digest: str, data: bytes) -> None:
        blob_file(server.data_dir, digest).write_bytes(data)

    assert_quarantines_and_heals(server, {}, corrupt)
    kept = list((server.data_dir / "quarantine").iterdir())
    assert len(kept) == 1
    # Kept for inspection: the corrupt bytes themselves, named after the digest they claimed.
    claimed = kept[0].name.split(".")[0].replace("-", ":")
    assert sha256(kept[0].read_bytes()) != claimed
    assert blob_file(server.data_dir, claimed).exists()  # the real content, pushed again


def test_finding_01_fsck_quarantines_a_corrupt_blob_s3(
    start_registry: Callable[..., RunningRegistry], s3_server, pg_cluster
) -> None:
    env = s3_postgres_env(s3_server, pg_cluster, redirect=False)
    server = start_registry(env=env)
    bucket, _, prefix = env["DOCKYARD_STORAGE"].removeprefix("s3://").partition("/")
    store = S3Store(
        bucket,
        endpoint=env["DOCKYARD_S3_ENDPOINT"],
        region="us-east-1",
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
        access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )

    def corrupt(digest: str, data: bytes) -> None:
        algorithm, hex_ = digest.split(":")
        obstore.put(store, f"{prefix}/blobs/{algorithm}/{hex_[:2]}/{hex_}", data)

    assert_quarantines_and_heals(server, env, corrupt)
    kept = [
        m["path"] for batch in obstore.list(store, prefix=f"{prefix}/quarantine/") for m in batch
    ]
    assert len(kept) == 1


def test_finding_01_fsck_reports_dangling_links_references_and_tags(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    server = start_registry()
    repo = unique_repo("fsck")
    with httpx.Client(base_url=server.url, timeout=60) as c:
        manifest_digest, body = push_image(c, repo, "v1")
        lonely = push_blob(c, repo, b"linked, then lost")
    layer = json.loads(body)["layers"][0]["digest"]
    for digest in (lonely, layer, manifest_digest):
        blob_file(server.data_dir, digest).unlink()

    report = fsck(server.data_dir)
    assert report.returncode == 1
    lines = report.stdout.splitlines()
    assert f"dangling-link\t{repo}\t{lonely}\tlinked blob is not in the blob store" in lines
    assert f"dangling-link\t{repo}\t{layer}\tlinked blob is not in the blob store" in lines
    assert any(line.startswith(f"missing-reference\t{repo}\t{layer}\t") for line in lines)
    assert any(
        line.startswith(f"missing-manifest-content\t{repo}\t{manifest_digest}") for line in lines
    )
    assert any(
        line.startswith(f"dangling-tag\t{repo}\t{manifest_digest}\ttag v1") for line in lines
    )
    assert "0 bad blobs" in report.stdout
    # Nothing to quarantine: --repair reports the same and moves nothing.
    repaired = fsck(server.data_dir, "--repair")
    assert repaired.returncode == 1 and "0 quarantined" in repaired.stdout
    assert not (server.data_dir / "quarantine").exists() or not any(
        (server.data_dir / "quarantine").iterdir()
    )


def test_finding_01_fsck_finds_nothing_wrong_after_ordinary_pushes(
    start_registry: Callable[..., RunningRegistry],
) -> None:
    server = start_registry()
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for i in range(3):
            push_image(c, unique_repo("fsck"), f"t{i}", layers=2)
    report = fsck(server.data_dir)
    assert report.returncode == 0, report.stdout + report.stderr
    assert report.stdout.strip().endswith("0 bad blobs, 0 problems")
    assert sha256(b"") not in report.stdout
