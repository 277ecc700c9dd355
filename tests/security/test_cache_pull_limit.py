"""Issue 13, finding 9, for pull-through cache repositories: a manifest's bytes read through the
blobs endpoint of a cached repository are a pull, exactly as through the manifests endpoint,
whether the cache holds that digest as a manifest, as a blob too or only as a blob (as a cache
filled before manifests were told apart may), or does not hold it yet. Layers stay free."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from dockyard.core.manifest import may_be_manifest
from dockyard.metadata.sql import SQLMetadataStore
from dockyard.service.registry import METADATA_FILE
from tests.proxy.helpers import (
    ACCEPT,
    cache_with_accounts,
    error_of,
    make_image,
    push_built_image,
)
from tests.support.server import RunningRegistry

ADMIN = httpx.BasicAuth("admin", "admin-pw")
MALLORY = httpx.BasicAuth("mallory", "mallory-pw")
REPO = "library/app"
CACHED = f"up/{REPO}"
LIMIT = 5


def remaining(resp: httpx.Response) -> str:
    return resp.headers.get("RateLimit-Remaining", "").split(";")[0]


def link_as_blob(
    data_dir: Path, repository: str, digest: str, size: int, *, only: bool = False
) -> None:
    """What an older cache did with a manifest read through the blobs endpoint: keep it as a
    blob of the cached repository (`only`: and not as a manifest)."""

    async def link() -> None:
        store = SQLMetadataStore.open_sqlite(data_dir / METADATA_FILE, migrate=False)
        try:
            await store.link_blob(repository, digest, size)
            if only:
                assert await store.delete_manifest(repository, digest)
        finally:
            await store.close()

    asyncio.run(link())


def test_finding_09_manifest_read_through_a_cached_repositorys_blobs_route_counts_as_a_pull(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    tags = ("v1", "v2", "v3", "v4", "v5")
    images = {tag: make_image(tmp_path, f"cache-limit-{tag}") for tag in tags}
    data_dir = tmp_path / "cache-data"
    # The upstream is a Dockyard, which serves manifests through its blobs endpoint too (the
    # Distribution the other cache tests use answers 404 there).
    up = start_registry()
    with httpx.Client(base_url=up.url, timeout=60) as http:
        for tag, image in images.items():
            push_built_image(http, REPO, tag, image)
    cache = cache_with_accounts(
        start_registry,
        up.url,
        mirror=False,
        data_dir=data_dir,
        env={
            "DOCKYARD_ANONYMOUS_PULL_LIMIT": str(LIMIT),
            "DOCKYARD_AUTHENTICATED_PULL_LIMIT": str(LIMIT),
            "DOCKYARD_PULL_LIMIT_WINDOW_SECONDS": "1000000000",
        },
    )
    fresh, known, legacy, late, bare = (images[tag] for tag in tags)

    def blob(http: httpx.Client, digest: str, **headers: str) -> httpx.Response:
        return http.get(f"/v2/{CACHED}/blobs/{digest}", headers=headers)

    with httpx.Client(base_url=cache.url, timeout=60) as anon:
        # HEADs and layers are free, whatever the route and however often.
        for _ in range(3):
            for image in images.values():
                head = anon.head(f"/v2/{CACHED}/blobs/{image.manifest_digest}")
                assert head.status_code == 200, head.text
                for digest in fresh.blob_digests:
                    layer = blob(anon, digest)
                    assert layer.status_code == 200 and "RateLimit-Remaining" not in layer.headers
        # `legacy` is cached as a manifest (a HEAD is free) and, as an older cache did, as
        # a blob of the cached repository too; `bare` only as a blob.
        for tag, image, only in (("v3", legacy, False), ("v5", bare, True)):
            head = anon.head(f"/v2/{CACHED}/manifests/{tag}", headers={"Accept": ACCEPT})
            assert head.status_code == 200, head.text
            size = len(image.manifest_bytes)
            link_as_blob(data_dir, CACHED, image.manifest_digest, size, only=only)

        # Not cached yet: fetched as the manifest it is, and counted.
        first = blob(anon, fresh.manifest_digest)
        assert first.status_code == 200, first.text
        assert first.content == fresh.manifest_bytes
        assert remaining(first) == str(LIMIT - 1), first.headers
        # Cached as a manifest, by the manifests route (which counts too).
        by_manifests = anon.get(f"/v2/{CACHED}/manifests/v2", headers={"Accept": ACCEPT})
        assert remaining(by_manifests) == str(LIMIT - 2), by_manifests.headers
        second = blob(anon, known.manifest_digest)
        assert second.content == known.manifest_bytes
        assert remaining(second) == str(LIMIT - 3), second.headers
        # Cached as a manifest and as a blob; only as a blob.
        third = blob(anon, legacy.manifest_digest)
        assert third.content == legacy.manifest_bytes
        assert remaining(third) == str(LIMIT - 4), third.headers
        fourth = blob(anon, bare.manifest_digest, Range="bytes=0-9")
        assert fourth.status_code == 206 and fourth.content == bare.manifest_bytes[:10]
        assert remaining(fourth) == "0", fourth.headers

        # Past the limit: every manifest read is refused, by either route, cached or not.
        for refused in (
            blob(anon, fresh.manifest_digest, Range="bytes=0-9"),
            blob(anon, known.manifest_digest),
            blob(anon, legacy.manifest_digest),
            blob(anon, bare.manifest_digest),
            blob(anon, late.manifest_digest),
            anon.get(f"/v2/{CACHED}/manifests/v1", headers={"Accept": ACCEPT}),
        ):
            assert refused.status_code == 429, (refused.request.url, refused.text)
            assert error_of(refused)["code"] == "TOOMANYREQUESTS"
            assert int(refused.headers["Retry-After"]) > 0
        # Layers are still served, uncounted.
        assert blob(anon, fresh.layers[0].digest).content == fresh.layers[0].compressed

    # An account has a count of its own, drawn on by the blobs route alike.
    with httpx.Client(base_url=cache.url, timeout=60, auth=MALLORY) as mallory:
        answers = [blob(mallory, image.manifest_digest) for image in images.values()]
        assert [a.status_code for a in answers] == [200] * LIMIT, [a.text for a in answers]
        assert [a.content for a in answers] == [i.manifest_bytes for i in images.values()]
        assert [remaining(a) for a in answers] == [str(n) for n in range(LIMIT - 1, -1, -1)]
        refused = blob(mallory, late.manifest_digest)
        assert refused.status_code == 429 and "Retry-After" in refused.headers
        assert blob(mallory, late.config_digest).content == late.config_bytes


def test_finding_09_cached_manifest_reads_count_when_concurrent_abandoned_or_adopted(
    start_registry: Callable[..., RunningRegistry], tmp_path: Path
) -> None:
    images = [make_image(tmp_path, f"cache-attack-{n}") for n in range(3)]
    up = start_registry()
    with httpx.Client(base_url=up.url, timeout=60) as http:
        for n, image in enumerate(images):
            for repo in (REPO, "library/copy"):
                push_built_image(http, repo, f"v{n}", image)
    # Two workers: some clients follow a download the other process leads.
    cache = cache_with_accounts(
        start_registry,
        up.url,
        "--workers",
        "2",
        mirror=False,
        env={
            "DOCKYARD_ANONYMOUS_PULL_LIMIT": "5",
            "DOCKYARD_AUTHENTICATED_PULL_LIMIT": "5",
            "DOCKYARD_PULL_LIMIT_WINDOW_SECONDS": "1000000000",
        },
    )
    concurrent, abandoned, adopted = (image.manifest_digest for image in images)

    # Eight clients at once read a manifest nothing holds yet, one download serving them all:
    # exactly the limit's worth get it, the others a 429 (a new connection each, so they
    # spread over both workers).
    barrier = threading.Barrier(8)

    def read(_: int) -> httpx.Response:
        barrier.wait()
        return httpx.get(f"{cache.url}/v2/{CACHED}/blobs/{concurrent}", timeout=60)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(read, range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 5 + [429] * 3
    assert {a.content for a in answers if a.status_code == 200} == {images[0].manifest_bytes}

    with httpx.Client(base_url=cache.url, timeout=60, auth=MALLORY) as mallory:
        # A client that hangs up before the bytes arrive leaves no uncounted copy behind.
        with (
            httpx.Client(base_url=cache.url, timeout=0.001, auth=MALLORY) as hasty,
            contextlib.suppress(httpx.TimeoutException),
        ):
            hasty.get(f"/v2/{CACHED}/blobs/{abandoned}")
        time.sleep(1)
        later = mallory.get(f"/v2/{CACHED}/blobs/{abandoned}")
        assert later.status_code == 200 and later.content == images[1].manifest_bytes
        assert remaining(later) in ("3", "4"), later.headers

        # A manifest another cached repository holds is not taken over as a mere blob.
        first = mallory.get(f"/v2/{CACHED}/blobs/{adopted}")
        assert first.status_code == 200 and remaining(first) != "", first.headers
        head = mallory.head(f"/v2/up/library/copy/blobs/{adopted}")
        assert head.status_code == 200, head.text
        copy = mallory.get(f"/v2/up/library/copy/blobs/{adopted}")
        assert copy.status_code == 200 and copy.content == images[2].manifest_bytes
        assert int(remaining(copy)) == int(remaining(first)) - 1, copy.headers


def test_finding_09_only_json_shaped_downloads_are_looked_at_as_manifests() -> None:
    manifest = b' \n{"schemaVersion": 2}'
    shaped = [manifest, b"", b" " * 1000, manifest[:3]]
    shaped += [manifest.decode().encode(e) for e in ("utf-8-sig", "utf-16", "utf-16-be", "utf-32")]
    assert all(may_be_manifest(head) for head in shaped)
    binary = [gzip.compress(b"a layer"), b"(\xb5/\xfd a zstd frame", b"\0" * 4096, b"[1, 2]"]
    assert not any(may_be_manifest(head) for head in binary)
