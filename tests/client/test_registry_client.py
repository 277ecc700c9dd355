"""RegistryClient against real registries: Dockyard and CNCF Distribution (no mocks).

Uploads both ways (monolithic, chunked), resumed uploads through a proxy that cuts the
connection mid-body, mounts, manifests, listings, errors, 429 and 5xx handling.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dockyard.client.errors import ClientError, DigestMismatch, NotFound, RateLimited
from dockyard.client.image import Manifest
from dockyard.client.registry import RegistryClient
from dockyard.client.remote import RegistryDestination, RegistrySource
from dockyard.client.transport import RetryPolicy, api_host, base_url, uses_plain_http
from dockyard.core import mediatypes as mt
from dockyard.core.manifest import Descriptor
from dockyard.core.reference import parse_reference
from tests.support.flaky_proxy import FlakyProxy, Injected
from tests.support.peers import Distribution
from tests.support.server import RunningRegistry, free_port
from tests.support.token_server import TokenServer

MiB = 1024 * 1024
LAYER = "application/vnd.oci.image.layer.v1.tar"


def run(coro):
    return asyncio.run(coro)


def repo() -> str:
    return f"client/{uuid.uuid4().hex[:10]}"


def blob(data: bytes, media_type: str = LAYER) -> Descriptor:
    return Descriptor(media_type, "sha256:" + hashlib.sha256(data).hexdigest(), len(data))


def opener_for(data: bytes, piece: int = 300_000):
    """A BlobOpener over bytes, recording the offsets it was opened at."""
    opened: list[int] = []

    def opener(offset: int) -> AsyncIterator[bytes]:
        opened.append(offset)

        async def stream() -> AsyncIterator[bytes]:
            for start in range(offset, len(data), piece):
                yield data[start : start + piece]

        return stream()

    opener.opened = opened  # type: ignore[attr-defined]
    return opener


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in stream])


def image(layer: bytes) -> tuple[Manifest, bytes, Descriptor]:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex}
    ).encode()
    config_desc = blob(config, mt.OCI_CONFIG)
    layer_desc = blob(layer)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": {
                "mediaType": mt.OCI_CONFIG,
                "digest": config_desc.digest,
                "size": config_desc.size,
            },
            "layers": [{"mediaType": LAYER, "digest": layer_desc.digest, "size": layer_desc.size}],
        }
    ).encode()
    return (
        Manifest(body, mt.OCI_MANIFEST, "sha256:" + hashlib.sha256(body).hexdigest()),
        config,
        config_desc,
    )


@pytest.fixture(scope="module")
def distribution(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    with Distribution(tmp_path_factory.mktemp("distribution")) as server:
        yield server


@pytest.fixture(params=["dockyard", "distribution"])
def target(request: pytest.FixtureRequest, registry: RunningRegistry) -> tuple[str, int]:
    """(host, port) of each real registry in turn."""
    if request.param == "dockyard":
        return registry.host, registry.port
    server: Distribution = request.getfixturevalue("distribution")
    return server.host, server.port


def client(host: str, **kw: object) -> RegistryClient:
    return RegistryClient(host, chunk_size=1 * MiB, monolithic_max=1 * MiB, **kw)  # type: ignore[arg-type]


# -- transport decisions (pure) ----------------------------------------------------------


def test_scheme_and_api_host_choices() -> None:
    assert uses_plain_http("localhost:5000") and uses_plain_http("127.3.4.5:80")
    assert uses_plain_http("[::1]:5000") and uses_plain_http("localhost")
    assert not uses_plain_http("ghcr.io") and not uses_plain_http("10.0.0.1:5000")
    assert uses_plain_http("myreg.lan:5000", ["myreg.lan:5000"])
    assert uses_plain_http("myreg.lan:5000", ["myreg.lan"])
    assert base_url("docker.io") == "https://registry-1.docker.io"
    assert api_host(parse_reference("alpine").registry) == "registry-1.docker.io"
    assert base_url("ghcr.io") == "https://ghcr.io"
    # HTTPS first everywhere; loopback may fall back to plain HTTP (SchemeProbe).
    assert base_url("127.0.0.1:5000") == "https://127.0.0.1:5000"


# -- blobs -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1000, 3 * MiB + 12345])
def test_upload_and_download_blob(target: tuple[str, int], size: int) -> None:
    host, _ = target
    data = os.urandom(size)
    desc = blob(data)
    name = repo()
    progress: list[int] = []

    async def go() -> None:
        async with client(host) as c:
            assert await c.blob_size(name, desc.digest) is None
            assert await c.upload_blob(name, desc, opener_for(data), progress.append) == desc.digest
            assert await c.blob_size(name, desc.digest) == size
            assert await read_all(c.open_blob(name, desc.digest)) == data
            assert (
                await read_all(c.open_blob(name, desc.digest, offset=size // 2))
                == data[size // 2 :]
            )

    run(go())
    assert sum(progress) == size


def test_chunked_upload_honours_chunk_size(registry: RunningRegistry) -> None:
    data = os.urandom(3 * MiB)
    desc = blob(data)
    proxy = FlakyProxy(registry.port).start()
    try:

        async def go() -> None:
            async with client(proxy.host) as c:
                await c.upload_blob(repo(), desc, opener_for(data))

        run(go())
    finally:
        proxy.stop()
    patches = [path for method, path in proxy.requests if method == "PATCH"]
    assert len(patches) == 3


def test_wrong_digest_is_refused(target: tuple[str, int]) -> None:
    host, _ = target
    data = os.urandom(2000)
    wrong = Descriptor(LAYER, "sha256:" + "0" * 64, len(data))

    async def go() -> None:
        async with client(host) as c:
            await c.upload_blob(repo(), wrong, opener_for(data))

    with pytest.raises(DigestMismatch):
        run(go())


def test_source_shorter_than_descriptor(registry: RunningRegistry) -> None:
    data = os.urandom(100)
    desc = Descriptor(LAYER, "sha256:" + hashlib.sha256(data).hexdigest(), 200)

    async def go() -> None:
        async with client(registry.host) as c:
            await c.upload_blob(repo(), desc, opener_for(data))

    with pytest.raises(DigestMismatch, match="200"):
        run(go())


def test_cross_repository_mount_and_spare_session(target: tuple[str, int]) -> None:
    host, _ = target
    data = os.urandom(5000)
    desc = blob(data)
    source, dest, other = repo(), repo(), repo()

    async def go() -> None:
        async with client(host) as c:
            await c.upload_blob(source, desc, opener_for(data))
            assert await c.mount_blob(dest, desc.digest, source) is True
            assert await c.blob_size(dest, desc.digest) == len(data)
            # Mounting from a repository without the blob opens an upload: kept, then used.
            assert await c.mount_blob(other, desc.digest, "client/nowhere") is False
            assert len(c._spare_uploads[other]) == 1
            await c.upload_blob(other, desc, opener_for(data))
            assert c._spare_uploads[other] == []
            assert await c.blob_size(other, desc.digest) == len(data)
            await c.delete_blob(other, desc.digest)
            assert await c.blob_size(other, desc.digest) is None

    run(go())


# -- manifests and listings --------------------------------------------------------------


def test_manifest_round_trip(target: tuple[str, int]) -> None:
    host, _ = target
    layer = os.urandom(3000)
    manifest, config, config_desc = image(layer)
    name = repo()

    async def go() -> None:
        async with client(host) as c:
            await c.upload_blob(name, blob(layer), opener_for(layer))
            await c.upload_blob(name, config_desc, opener_for(config))
            assert await c.put_manifest(name, "1.0", manifest) == manifest.digest
            assert await c.get_manifest(name, "1.0") == manifest
            assert await c.get_manifest(name, manifest.digest) == manifest
            head = await c.head_manifest(name, "1.0")
            assert head is not None
            assert (head.digest, head.size, head.media_type) == (
                manifest.digest,
                len(manifest.body),
                mt.OCI_MANIFEST,
            )
            await c.delete_manifest(name, manifest.digest)
            assert await c.head_manifest(name, manifest.digest) is None
            with pytest.raises(NotFound, match="check the name, tag or digest"):
                await c.get_manifest(name, "1.0")

    run(go())


def test_tags_and_catalog_follow_link_pages(target: tuple[str, int]) -> None:
    host, _ = target
    layer = os.urandom(500)
    manifest, config, config_desc = image(layer)
    name = repo()
    tags = [f"t{i}" for i in range(7)]

    async def go() -> None:
        async with client(host) as c:
            await c.upload_blob(name, blob(layer), opener_for(layer))
            await c.upload_blob(name, config_desc, opener_for(config))
            for tag in tags:
                await c.put_manifest(name, tag, manifest)
            assert sorted(await c.list_tags(name, page_size=2)) == tags
            assert sorted(await c.list_tags(name)) == tags
            assert name in await c.catalog(page_size=3)
            with pytest.raises(NotFound):
                await c.list_tags("client/never-pushed")

    run(go())


def test_remote_source_and_destination_copy_with_mount(registry: RunningRegistry) -> None:
    layer = os.urandom(4000)
    manifest, config, config_desc = image(layer)
    name, copy_name = repo(), repo()

    async def go() -> None:
        async with client(registry.host) as c:
            await c.upload_blob(name, blob(layer), opener_for(layer))
            await c.upload_blob(name, config_desc, opener_for(config))
            await c.put_manifest(name, "v1", manifest)
            src = RegistrySource(c, parse_reference(f"{registry.host}/{name}:v1"))
            dst = RegistryDestination(c, parse_reference(f"{registry.host}/{copy_name}:v1"))
            assert src.describe() == f"docker://{registry.host}/{name}:v1"
            top = await src.get_manifest()
            for desc in (blob(layer), config_desc):
                assert not await dst.has_blob(desc)
                assert await dst.mount_blob(desc, src) == name
                assert await dst.has_blob(desc)
            assert await dst.put_manifest(top, "v1") == manifest.digest
            await dst.commit()
            # Streams through the protocol too: copy the layer into a third repository.
            third = RegistryDestination(c, parse_reference(f"{registry.host}/{repo()}:x"))
            await third.put_blob(blob(layer), lambda off: src.open_blob(blob(layer), off))
            assert await third.has_blob(blob(layer))
            assert await c.get_manifest(copy_name, "v1") == manifest

    run(go())


# -- failures, retries, resume -----------------------------------------------------------


@pytest.mark.parametrize("cut_after", [1, 700_000])
def test_upload_resumes_after_connection_cut(target: tuple[str, int], cut_after: int) -> None:
    _, port = target
    data = os.urandom(3 * MiB + 4321)
    desc = blob(data)
    name = repo()
    progress: list[int] = []
    opener = opener_for(data)
    with FlakyProxy(port, cut_after=cut_after, cut_method="PATCH", cuts=2) as proxy:

        async def go() -> None:
            async with client(proxy.host, retry=RetryPolicy(backoff=0.01)) as c:
                assert await c.upload_blob(name, desc, opener, progress.append) == desc.digest
                assert await c.blob_size(name, desc.digest) == len(data)
                assert await read_all(c.open_blob(name, desc.digest)) == data

        run(go())
        assert proxy.cuts_done == 2
    assert sum(progress) == len(data)
    assert len(opener.opened) == 3  # opened once, reopened after each cut
    assert any(n < 0 for n in progress)


def test_missing_blob_is_not_found(registry: RunningRegistry) -> None:
    async def go() -> None:
        async with client(registry.host) as c:
            with pytest.raises(NotFound, match="BLOB_UNKNOWN"):
                await read_all(c.open_blob(repo(), "sha256:" + "1" * 64))

    run(go())


def test_rate_limit_shows_registry_headers(registry: RunningRegistry) -> None:
    headers = {
        "Retry-After": "120",
        "RateLimit-Limit": "100;w=21600",
        "RateLimit-Remaining": "0;w=21600",
        "Content-Type": "application/json",
    }
    body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}).encode()
    with FlakyProxy(registry.port) as proxy:

        async def go() -> None:
            async with client(proxy.host, retry=RetryPolicy(rate_limit_wait=5)) as c:
                await c.ping()
                proxy.inject.append(Injected(429, headers, body))
                await c.list_tags("client/whatever")

        with pytest.raises(RateLimited) as caught:
            run(go())
    message = str(caught.value)
    assert "Retry-After: 120" in message and "RateLimit-Remaining: 0;w=21600" in message
    assert "RateLimit-Limit: 100;w=21600" in message and "120 seconds" in message
    assert caught.value.retry_after == 120


def test_short_rate_limit_is_waited_out_and_5xx_retried(registry: RunningRegistry) -> None:
    layer = os.urandom(100)
    name = repo()
    with FlakyProxy(registry.port) as proxy:

        async def go() -> None:
            policy = RetryPolicy(backoff=0.01, rate_limit_wait=5)
            async with client(proxy.host, retry=policy) as c:
                await c.upload_blob(name, blob(layer), opener_for(layer))
                proxy.inject.extend(
                    [Injected(429, {"Retry-After": "0"}), Injected(503), Injected(502)]
                )
                assert await c.blob_size(name, blob(layer).digest) == 100

        run(go())
        assert proxy.injected_done == 3


def test_server_errors_give_up_after_bounded_retries(registry: RunningRegistry) -> None:
    with FlakyProxy(registry.port) as proxy:

        async def go() -> None:
            async with client(proxy.host, retry=RetryPolicy(attempts=3, backoff=0.01)) as c:
                await c.ping()
                proxy.inject.extend(Injected(503) for _ in range(5))
                await c.list_tags("client/x")

        with pytest.raises(ClientError, match="try again later"):
            run(go())
        assert proxy.injected_done == 3


def test_unreachable_registry(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"

    async def go() -> None:
        async with client(host, retry=RetryPolicy(attempts=2, backoff=0.01)) as c:
            await c.ping()

    with pytest.raises(ClientError, match="cannot connect"):
        run(go())


def test_not_a_registry(registry: RunningRegistry) -> None:
    async def go() -> None:
        # Any HTTP server that answers 404 at /v2/ is not a registry: the token service.
        with TokenServer(Path(registry.data_dir).parent / f"tok-{uuid.uuid4().hex}") as tok:
            async with client(f"127.0.0.1:{tok.port}") as c:
                await c.ping()

    with pytest.raises(ClientError, match="does not serve the registry API"):
        run(go())
