"""A quota on a pull-through cache's namespace (`up`), on filesystem + SQLite and on S3 +
PostgreSQL: a pull that would take the cache past it answers DENIED with the usage and keeps
nothing; what fits is kept; lifting the quota lets the same pull through."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from dockyard.cli.main import app
from dockyard.service.quotas import human
from dockyard.storage.filesystem import FilesystemBlobStore
from dockyard.storage.s3 import S3BlobStore
from tests.conftest import s3_postgres_env
from tests.proxy.helpers import Upstream, error_of, get_manifest, make_image, start_cache
from tests.support.server import RunningRegistry

REPO = "library/app"


@pytest.fixture(params=["filesystem+sqlite", "s3+postgresql"])
def backend_env(request: pytest.FixtureRequest) -> dict[str, str]:
    if request.param == "filesystem+sqlite":
        return {}
    return s3_postgres_env(
        request.getfixturevalue("s3_server"),
        request.getfixturevalue("pg_cluster"),
        redirect=False,
    )


def quota(cache: RunningRegistry, env: dict[str, str], *args: str) -> str:
    """`dockyard policy quota ...` on the cache's store, run in-process: the same code as
    `python -m dockyard ...` (as tests/auth's `admin`), without an interpreter start each."""
    result = CliRunner().invoke(
        app,
        ["policy", "quota", *args],
        env={**env, "DOCKYARD_DATA_DIR": str(cache.data_dir)},
    )
    assert result.exit_code == 0, (args, result.output)
    return result.stdout.strip()


def stored(cache: RunningRegistry, env: dict[str, str]) -> set[str]:
    """Every digest the cache's disk or bucket holds, listed."""
    if "DOCKYARD_STORAGE" in env:
        store = S3BlobStore.from_url(
            env["DOCKYARD_STORAGE"],
            endpoint=env["DOCKYARD_S3_ENDPOINT"],
            region="us-east-1",
            path_style=True,
            access_key=env["AWS_ACCESS_KEY_ID"],
            secret_key=env["AWS_SECRET_ACCESS_KEY"],
            presign_seconds=None,
        )
    else:
        store = FilesystemBlobStore(cache.data_dir)

    async def listing() -> set[str]:
        return {d async for d in store.iter_digests()}

    return asyncio.run(listing())


def denied(response: httpx.Response, message: str) -> None:
    assert response.status_code == 403, response.text
    error = error_of(response)
    assert error["code"] == "DENIED" and error["message"] == message, error


def test_a_pull_past_the_cache_namespace_quota_is_denied_and_keeps_nothing(
    tmp_path: Path,
    up: Upstream,
    start_registry: Callable[..., RunningRegistry],
    backend_env: dict[str, str],
) -> None:
    image = make_image(tmp_path, "quota", layers=1)
    up.push_image(REPO, "v1", image)
    cache = start_cache(start_registry, up.url, env=backend_env)
    manifest, config = len(image.manifest_bytes), len(image.config_bytes)
    layer = image.layers[0]
    name = f"up/{REPO}"

    with httpx.Client(base_url=cache.url, timeout=60) as http:
        # Smaller than the manifest: not even the manifest is kept, nor served.
        quota(cache, backend_env, "set", "up", str(manifest - 1))
        for _ in range(2):
            denied(
                get_manifest(http, name, "v1"),
                f"quota exceeded: {human(manifest)} of {human(manifest - 1)} used in up",
            )
        assert quota(cache, backend_env, "show", "up").startswith("up: 0 B used")
        assert image.manifest_digest not in stored(cache, backend_env)

        # Room for the manifest and the config, not the layer.
        limit = manifest + config
        quota(cache, backend_env, "set", "up", str(limit))
        pulled = get_manifest(http, name, "v1")
        assert pulled.status_code == 200 and pulled.content == image.manifest_bytes
        got = http.get(f"/v2/{name}/blobs/{image.config_digest}")
        assert got.status_code == 200 and got.content == image.config_bytes
        # Counted once the download is published, which may end just after the client has it.
        full = f"up: {human(limit)} used, quota {human(limit)}"
        deadline = time.monotonic() + 30
        while quota(cache, backend_env, "show", "up") != full and time.monotonic() < deadline:
            time.sleep(0.1)
        for _ in range(2):
            # A HEAD keeps nothing, so it answers; the GET would keep the layer.
            head = http.head(f"/v2/{name}/blobs/{layer.digest}")
            assert head.status_code == 200
            assert int(head.headers["Content-Length"]) == layer.size
            denied(
                http.get(f"/v2/{name}/blobs/{layer.digest}"),
                f"quota exceeded: {human(limit + layer.size)} of {human(limit)} used in up",
            )
        assert quota(cache, backend_env, "show", "up") == full
        held = stored(cache, backend_env)
        assert {image.manifest_digest, image.config_digest} <= held
        assert layer.digest not in held

        quota(cache, backend_env, "set", "up", "none")
        got = http.get(f"/v2/{name}/blobs/{layer.digest}")
        assert got.status_code == 200 and got.content == layer.compressed
        # Kept once the download is published, which may end just after the client has it.
        deadline = time.monotonic() + 30
        while layer.digest not in stored(cache, backend_env) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert layer.digest in stored(cache, backend_env)
