"""Manifest validation: what is accepted, what is MANIFEST_INVALID, what edges are derived."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.core import mediatypes as mt
from dockyard.core.digest import sha256_of
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.manifest import MAX_MANIFEST_BYTES, parse_manifest

CONFIG = b"{}"


def desc(media_type: str, content: bytes, **extra: object) -> dict:
    return {"mediaType": media_type, "digest": sha256_of(content), "size": len(content), **extra}


def image(**extra: object) -> dict:
    return {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": desc(mt.OCI_CONFIG, CONFIG),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar", b"layer")],
        **extra,
    }


def parse(doc: object, content_type: str | None = None):
    return parse_manifest(json.dumps(doc).encode(), content_type)


def invalid(doc: object, content_type: str | None = None) -> RegistryError:
    with pytest.raises(RegistryError) as info:
        parse(doc, content_type)
    return info.value


def test_oci_image_edges() -> None:
    parsed = parse(image(), mt.OCI_MANIFEST)
    assert parsed.media_type == mt.OCI_MANIFEST
    assert [d.digest for d in parsed.blobs] == [sha256_of(CONFIG), sha256_of(b"layer")]
    assert parsed.referrer_artifact_type == mt.OCI_CONFIG


def test_docker_schema2_manifest_and_list() -> None:
    doc = image(mediaType=mt.DOCKER_MANIFEST)
    assert parse(doc, mt.DOCKER_MANIFEST).media_type == mt.DOCKER_MANIFEST
    child = desc(mt.DOCKER_MANIFEST, b"x", platform={"os": "linux", "architecture": "amd64"})
    listing = {"schemaVersion": 2, "mediaType": mt.DOCKER_MANIFEST_LIST, "manifests": [child]}
    parsed = parse(listing, mt.DOCKER_MANIFEST_LIST)
    assert parsed.is_index and [c.digest for c in parsed.children] == [sha256_of(b"x")]


def test_docker_types_must_be_declared_in_the_body() -> None:
    doc = image()
    del doc["mediaType"]
    assert invalid(doc, mt.DOCKER_MANIFEST).code is ErrorCode.MANIFEST_INVALID


def test_artifact_with_empty_config_subject_and_data() -> None:
    empty = desc(mt.OCI_EMPTY, b"{}", data=base64.b64encode(b"{}").decode())
    subject = desc(mt.OCI_MANIFEST, b"subject")
    doc = image(
        artifactType="application/vnd.example+type",
        config=empty,
        subject=subject,
        annotations={"a": "b"},
    )
    parsed = parse(doc, mt.OCI_MANIFEST)
    assert parsed.referrer_artifact_type == "application/vnd.example+type"
    assert parsed.subject is not None and parsed.subject.digest == sha256_of(b"subject")
    assert parsed.blobs[0].data == b"{}"
    assert parsed.annotations == {"a": "b"}


def test_embedded_data_must_match() -> None:
    bad = desc(mt.OCI_EMPTY, b"{}", data=base64.b64encode(b"[]").decode())
    assert invalid(image(config=bad)).code is ErrorCode.MANIFEST_INVALID


@pytest.mark.parametrize(
    "doc",
    [
        [],
        "x",
        {"schemaVersion": 1},
        image(schemaVersion=3),
        image(config=None),
        image(layers="nope"),
        image(layers=[{"mediaType": "x", "digest": "sha256:1", "size": 1}]),
        image(layers=[{"mediaType": "x", "digest": sha256_of(b""), "size": -1}]),
        image(layers=[{"mediaType": "x", "digest": sha256_of(b""), "size": True}]),
        image(manifests=[]),  # ambiguous: both an image and an index
        image(annotations={"a": 1}),
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [], "layers": []},
        {"schemaVersion": 2, "mediaType": mt.OCI_INDEX},
    ],
)
def test_malformed_manifests_are_manifest_invalid(doc: object) -> None:
    assert invalid(doc).code is ErrorCode.MANIFEST_INVALID


def test_media_type_mismatch_and_schema1() -> None:
    assert invalid(image(), mt.OCI_INDEX).code is ErrorCode.MANIFEST_INVALID
    assert invalid(image(), mt.DOCKER_SCHEMA1_SIGNED).code is ErrorCode.MANIFEST_INVALID
    assert invalid(image(), "text/plain").code is ErrorCode.MANIFEST_INVALID


def test_size_limit_is_413() -> None:
    with pytest.raises(RegistryError) as info:
        parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1), mt.OCI_MANIFEST)
    assert info.value.status == 413


@given(
    st.binary(max_size=300),
    st.sampled_from([None, mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, "application/json"]),
)
def test_any_bytes_parse_or_fail_cleanly(body: bytes, content_type: str | None) -> None:
    try:
        parse_manifest(body, content_type)
    except RegistryError as exc:
        assert exc.code in (ErrorCode.MANIFEST_INVALID, ErrorCode.DIGEST_INVALID)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "schemaVersion",
                "mediaType",
                "config",
                "layers",
                "manifests",
                "subject",
                "artifactType",
                "annotations",
            ]
        ),
        json_values,
    )
)
def test_structured_garbage_fails_cleanly(doc: dict) -> None:
    try:
        parse(doc)
    except RegistryError as exc:
        assert exc.code is ErrorCode.MANIFEST_INVALID
