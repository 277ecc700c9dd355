"""`dockyard migrate`: a filesystem + SQLite registry moved to S3 + PostgreSQL, nothing lost."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.images import write_oci_image
from tests.support.peers import containers_env


def test_migrate_filesystem_sqlite_to_s3_postgres(
    start_registry, replicas, shared_backends, tmp_path: Path
) -> None:
    admin = {"DOCKYARD_ADMIN_PASSWORD": "admin-pw"}
    old = start_registry("--auth", env=admin)
    image = write_oci_image(tmp_path / "img", "v1", file_size=300_000)
    with containers_env(tmp_path / "ce") as ce:
        ce.skopeo("login", "--tls-verify=false", "-u", "admin", "-p", "admin-pw", old.host)
        ce.skopeo(
            "copy",
            "--dest-tls-verify=false",
            f"oci:{tmp_path / 'img'}:v1",
            f"docker://{old.host}/admin/app:v1",
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "repo",
            "visibility",
            "admin/app",
            "public",
            "--data-dir",
            str(old.data_dir),
        ],
        check=True,
        capture_output=True,
    )
    old.stop()

    # The source is named by --data-dir alone: no DOCKYARD_* variable may point elsewhere.
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")},
        **{k: v for k, v in shared_backends.items() if k.startswith("AWS_")},
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "migrate",
            "--data-dir",
            str(old.data_dir),
            "--to-storage",
            shared_backends["DOCKYARD_STORAGE"],
            "--s3-endpoint",
            shared_backends["DOCKYARD_S3_ENDPOINT"],
            "--s3-path-style",
            "--to-metadata",
            shared_backends["DOCKYARD_METADATA"],
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"blobs: {1 + len(image.layers) + 1} copied" in result.stdout  # config, layers, manifest
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "dockyard",
            "migrate",
            "--data-dir",
            str(old.data_dir),
            "--to-metadata",
            shared_backends["DOCKYARD_METADATA"],
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert again.returncode == 1 and "migrate into an empty one" in again.stderr

    new = replicas("--auth")
    with httpx.Client(base_url=new.url, timeout=60, follow_redirects=True) as client:
        # Public, so anonymous pulls work: the visibility setting came along.
        manifest = client.get(
            "/v2/admin/app/manifests/v1",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        )
        assert manifest.content == image.manifest_bytes
        for layer in image.layers:
            assert client.get(f"/v2/admin/app/blobs/{layer.digest}").content == layer.compressed
        # Accounts came along: the admin's password still works.
        me = client.get("/api/v1/me", auth=("admin", "admin-pw"))
        assert me.status_code == 200 and me.json()["admin"] is True
