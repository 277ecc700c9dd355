"""The view models of the repository and image pages, on every pair of blob store and database:
tags a page at a time with sizes and platforms, an image explained, raw bytes, and a page of a
5,000-tag repository reading only the manifests it shows."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from dockyard.core import mediatypes as mt
from dockyard.core.errors import RegistryError
from dockyard.service.accounts import AccountService
from dockyard.service.image_views import ImageViews
from dockyard.service.manifests import ManifestService

LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}


class Pusher:
    """Pushes as the registry does: blobs stored and linked, then the manifest checked and kept."""

    def __init__(self, meta, blob_store, run) -> None:
        self.meta, self.blob_store, self.run = meta, blob_store, run
        self.manifests = ManifestService(blob_store, meta)

    def blob(self, repository: str, data: bytes) -> None:
        self.run(self.blob_store.put(sha(data), data))
        self.run(self.meta.link_blob(repository, sha(data), len(data)))

    def image(
        self, repository: str, tag: str | None, config: dict[str, Any], layers: list[bytes], **extra
    ) -> tuple[str, bytes, bytes]:
        config_bytes = json.dumps(config).encode()
        self.blob(repository, config_bytes)
        for layer in layers:
            self.blob(repository, layer)
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_MANIFEST,
                "config": descriptor(mt.OCI_CONFIG, config_bytes),
                "layers": [descriptor(LAYER, layer) for layer in layers],
                **extra,
            }
        ).encode()
        result = self.run(self.manifests.put(repository, tag or sha(body), body, mt.OCI_MANIFEST))
        return result.digest, body, config_bytes

    def index(self, repository: str, tag: str, children: list[tuple[str, bytes, dict]]) -> str:
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": mt.OCI_INDEX,
                "manifests": [
                    descriptor(mt.OCI_MANIFEST, child, platform=platform)
                    for _, child, platform in children
                ],
            }
        ).encode()
        return self.run(self.manifests.put(repository, tag, body, mt.OCI_INDEX)).digest


@pytest.fixture
def setup(meta, blob_store, run):
    pusher = Pusher(meta, blob_store, run)
    views = ImageViews(meta, blob_store, pusher.manifests, AccountService(meta.accounts, meta))
    return pusher, views


CONFIG = {
    "created": "2026-01-02T03:04:05Z",
    "architecture": "arm64",
    "variant": "v8",
    "os": "linux",
    "config": {
        "Entrypoint": ["/bin/app"],
        "Cmd": ["--serve"],
        "Env": ["PATH=/usr/bin", "MODE=prod"],
        "ExposedPorts": {"8080/tcp": {}, "53/udp": {}},
        "Labels": {"org.opencontainers.image.source": "https://example.com/app", "n": 5},
        "User": "app",
        "WorkingDir": "/srv",
    },
    "history": [
        {"created": "2026-01-01T00:00:00Z", "created_by": "ADD rootfs /"},
        {"created_by": "ENV MODE=prod", "empty_layer": True},
        "not an object",
    ],
}


def test_an_image_is_explained(setup, run) -> None:
    pusher, views = setup
    digest, body, config_bytes = pusher.image(
        "acme/app", "v1", CONFIG, [b"layer one", b"layer two!"], annotations={"k": "v"}
    )
    run(
        pusher.meta.put_manifest(
            "acme/app", run(views.manifests.resolve("acme/app", "v1")), [], ["latest"]
        )
    )
    for reference in ("v1", digest):
        image = run(views.image("acme/app", reference))
        assert image.digest == digest and image.reference == reference
        assert not image.is_index and image.tags == ["latest", "v1"]
        assert image.artifact_type is None, "an ordinary image's config type is no artifact"
        assert image.size == len(config_bytes) + len(b"layer one") + len(b"layer two!")
        assert image.manifest_size == len(body)
        assert image.annotations == {"k": "v"}
        assert [(layer.size, layer.media_type) for layer in image.layers] == [
            (9, LAYER),
            (10, LAYER),
        ]
        config = image.config
        assert config is not None and config.readable
        assert config.digest == sha(config_bytes)
        assert (config.os, config.architecture, config.variant) == ("linux", "arm64", "v8")
        assert config.entrypoint == ["/bin/app"] and config.cmd == ["--serve"]
        assert config.env == ["PATH=/usr/bin", "MODE=prod"]
        assert config.exposed_ports == ["53/udp", "8080/tcp"]
        assert config.labels == {"org.opencontainers.image.source": "https://example.com/app"}
        assert (config.user, config.working_dir, config.created) == (
            "app",
            "/srv",
            CONFIG["created"],
        )
        assert [(h.created_by, h.empty_layer) for h in config.history] == [
            ("ADD rootfs /", False),
            ("ENV MODE=prod", True),
        ]
    assert run(views.raw_manifest("acme/app", "v1")) == (mt.OCI_MANIFEST, body)
    assert run(views.raw_config("acme/app", digest)) == (mt.OCI_CONFIG, config_bytes)


def test_referrers_are_listed_with_their_artifact_type(setup, run) -> None:
    pusher, views = setup
    digest, body, _ = pusher.image("acme/app", "v1", CONFIG, [b"layer"])
    subject = descriptor(mt.OCI_MANIFEST, body)
    signature, _, _ = pusher.image(
        "acme/app",
        None,
        {"kind": "signature"},
        [b"sig"],
        artifactType="application/vnd.dev.cosign.artifact.sig.v1+json",
        subject=subject,
    )
    sbom, _, _ = pusher.image(
        "acme/app",
        None,
        {"kind": "sbom"},
        [b"spdx"],
        artifactType="application/spdx+json",
        subject=subject,
    )
    image = run(views.image("acme/app", "v1"))
    assert {(r.digest, r.artifact_type) for r in image.referrers} == {
        (signature, "application/vnd.dev.cosign.artifact.sig.v1+json"),
        (sbom, "application/spdx+json"),
    }
    explained = run(views.image("acme/app", sbom))
    assert explained.subject == digest and explained.artifact_type == "application/spdx+json"


def test_an_index_lists_its_platforms_with_their_sizes(setup, run) -> None:
    pusher, views = setup
    amd = pusher.image("acme/multi", None, {"os": "linux", "architecture": "amd64"}, [b"a" * 100])
    arm = pusher.image("acme/multi", None, {"os": "linux"}, [b"b" * 200, b"c" * 50])
    attestation = pusher.image("acme/multi", None, {"kind": "attestation"}, [b"in-toto"])
    index = pusher.index(
        "acme/multi",
        "latest",
        [
            (amd[0], amd[1], {"os": "linux", "architecture": "amd64"}),
            (arm[0], arm[1], {"os": "linux", "architecture": "arm64", "variant": "v8"}),
            (attestation[0], attestation[1], {"os": "unknown", "architecture": "unknown"}),
        ],
    )
    page = run(views.tags("acme/multi"))
    assert page.total == 1
    row = page.tags[0]
    assert row.is_index and row.digest == index and row.size is None
    # The attestation is no platform to pull.
    assert [(p.label, p.size) for p in row.platforms] == [
        ("linux/amd64", len(amd[2]) + 100),
        ("linux/arm64/v8", len(arm[2]) + 250),
    ]
    image = run(views.image("acme/multi", "latest"))
    assert image.is_index and image.config is None and image.layers == []
    assert [p.label for p in image.platforms] == [
        "linux/amd64",
        "linux/arm64/v8",
        "unknown/unknown",
    ]
    with pytest.raises(RegistryError) as refused:
        run(views.raw_config("acme/multi", "latest"))
    assert refused.value.code.code == "BLOB_UNKNOWN"


def test_unknown_things_are_refused_as_the_registry_refuses_them(setup, run) -> None:
    pusher, views = setup
    pusher.image("acme/app", "v1", CONFIG, [b"layer"])
    for reference in ("v2", "sha256:" + "0" * 64, "sha256:nothex", "bad tag!", "x" * 500):
        with pytest.raises(RegistryError) as refused:
            run(views.image("acme/app", reference))
        assert refused.value.code.code == "MANIFEST_UNKNOWN"
    with pytest.raises(RegistryError) as refused:
        run(views.image("acme/other", "v1"))
    assert refused.value.code.code == "MANIFEST_UNKNOWN"
    with pytest.raises(RegistryError) as refused:
        run(views.tags("acme/other"))
    assert refused.value.code.code == "NOT_FOUND"
    run(pusher.meta.delete_repository("acme/app"))
    with pytest.raises(RegistryError):
        run(views.tags("acme/app"))


def test_an_odd_config_is_shown_as_far_as_it_goes(setup, run) -> None:
    pusher, views = setup
    odd = {
        "config": {"Entrypoint": "not a list", "Env": [1, "A=b"], "ExposedPorts": []},
        "history": 5,
    }
    pusher.image("acme/app", "odd", odd, [])
    config = run(views.image("acme/app", "odd")).config
    assert config is not None and config.readable
    assert config.entrypoint is None and config.env == ["A=b"] and config.exposed_ports == []
    assert config.history == []


def test_a_page_of_5000_tags_reads_only_its_own_manifests(setup, run, meta) -> None:
    pusher, views = setup
    digests = [pusher.image("acme/big", None, {"n": n}, [])[0] for n in range(3)]
    # 5,000 tags over three manifests, pushed in batches as a CI would.
    for start in range(0, 5000, 500):
        for digest_index, digest in enumerate(digests):
            record = run(meta.get_manifest("acme/big", digest))
            run(
                meta.put_manifest(
                    "acme/big",
                    record,
                    [],
                    [f"build-{n:04d}" for n in range(start, start + 500) if n % 3 == digest_index],
                )
            )
    read: list[str] = []
    original = views.manifests.content

    async def counted(record):
        read.append(record.digest)
        return await original(record)

    views.manifests.content = counted
    page = run(views.tags("acme/big", page=3))
    assert page.total == 5000 and page.pages == 100 and page.page == 3
    assert len(page.tags) == 50 and len(read) <= 50
    filtered = run(views.tags("acme/big", contains="build-49"))
    assert filtered.total == 100 and len(filtered.tags) == 50
    assert all("build-49" in row.tag for row in filtered.tags)
    past = run(views.tags("acme/big", contains="build-49", page=99))
    assert past.page == 2 and len(past.tags) == 50
