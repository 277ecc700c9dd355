"""core/cosign.py against signatures cosign made: every valid vector is accepted, a tampered copy
of each is refused with its own reason, and what dockyard writes is byte for byte what cosign
wrote (payload, config)."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.core import cosign, keys

VECTORS = Path(__file__).parents[1] / "data" / "signatures"


@dataclass(frozen=True)
class Vector:
    name: str
    payload: bytes
    signature_b64: str
    key: keys.PublicKey

    @property
    def claims(self) -> cosign.Claims:
        claims = cosign.read_payload(self.payload)
        assert claims is not None
        return claims

    def annotations(self, signature_b64: str | None = None) -> dict[str, str]:
        return {cosign.SIGNATURE_ANNOTATION: signature_b64 or self.signature_b64}


def _vectors() -> list[Vector]:
    found = []
    for folder in ("cosign-simplesigning-key", "cosign-simplesigning-key-rekor"):
        directory = VECTORS / folder
        found.append(
            Vector(
                folder,
                (directory / "payload.json").read_bytes(),
                (directory / "signature.b64").read_text().strip(),
                keys.load_public_key((directory / "cosign.pub").read_bytes()),
            )
        )
    multialg = VECTORS / "cosign-simplesigning-multialg-keys"
    for algorithm in ("ecdsa-p256", "ecdsa-p384", "rsa2048", "rsa3072"):
        found.append(
            Vector(
                f"multialg-{algorithm}",
                (multialg / "payload.json").read_bytes(),
                (multialg / f"{algorithm}.sig.b64").read_text().strip(),
                keys.load_public_key((multialg / f"{algorithm}.pub").read_bytes()),
            )
        )
    return found


VECTOR_LIST = _vectors()
IDS = [vector.name for vector in VECTOR_LIST]


@pytest.mark.parametrize("vector", VECTOR_LIST, ids=IDS)
def test_every_valid_vector_is_accepted(vector: Vector) -> None:
    claims = vector.claims
    verdict = cosign.judge(
        vector.payload,
        vector.annotations(),
        [
            ("other", keys.load_public_key(keys.public_key_pem(keys.generate_private_key()))),
            ("the key", vector.key),
        ],
        claims.manifest_digest,
        claims.docker_reference,
    )
    assert verdict.valid and verdict.key_name == "the key", verdict


@pytest.mark.parametrize("vector", VECTOR_LIST, ids=IDS)
def test_a_tampered_copy_of_every_vector_is_refused_with_its_reason(vector: Vector) -> None:
    claims = vector.claims
    trusted = [("the key", vector.key)]

    def judge(payload: bytes, signature: str | None = None, **expect: str) -> cosign.Verdict:
        return cosign.judge(
            payload,
            vector.annotations(signature),
            trusted,
            expect.get("digest", claims.manifest_digest),
            expect.get("repository", claims.docker_reference),
        )

    # The payload names another image: the signature no longer covers it.
    other = "sha256:" + hashlib.sha256(b"another image").hexdigest()
    changed = vector.payload.replace(claims.manifest_digest.encode(), other.encode())
    assert judge(changed).failure is cosign.Failure.INVALID_SIGNATURE
    # The same document re-serialised (spaces): not the bytes that were signed.
    spaced = json.dumps(json.loads(vector.payload)).encode()
    assert spaced != vector.payload
    assert judge(spaced).failure is cosign.Failure.INVALID_SIGNATURE
    # A flipped bit in the signature.
    raw = bytearray(base64.b64decode(vector.signature_b64))
    raw[-3] ^= 0x10
    assert judge(vector.payload, base64.b64encode(raw).decode()).failure is (
        cosign.Failure.INVALID_SIGNATURE
    )
    assert judge(vector.payload, "not base64 !").failure is cosign.Failure.NOT_BASE64
    # A wrong key.
    stranger = keys.load_public_key(keys.public_key_pem(keys.generate_private_key()))
    verdict = cosign.judge(
        vector.payload,
        vector.annotations(),
        [("stranger", stranger)],
        claims.manifest_digest,
        claims.docker_reference,
    )
    assert verdict.failure is cosign.Failure.INVALID_SIGNATURE
    # A valid signature, but checked for another digest or another repository.
    assert judge(vector.payload, digest=other).failure is cosign.Failure.OTHER_DIGEST
    assert (
        judge(vector.payload, repository="example.com/someone/else").failure
        is cosign.Failure.OTHER_REPOSITORY
    )
    # No signature annotation at all.
    none = cosign.judge(vector.payload, {}, trusted, claims.manifest_digest, "x")
    assert none.failure is cosign.Failure.NO_SIGNATURE
    messages = {failure.value for failure in cosign.Failure}
    assert len(messages) == len(cosign.Failure)


def test_repository_comparison_normalises_like_docker() -> None:
    assert cosign.same_repository("index.docker.io/library/alpine", "docker.io/library/alpine")
    assert cosign.same_repository("alpine", "docker.io/library/alpine")
    assert cosign.same_repository("127.0.0.1:5000/me/app:1.0", "127.0.0.1:5000/me/app")
    assert not cosign.same_repository("127.0.0.1:5000/me/app", "127.0.0.1:5001/me/app")
    assert not cosign.same_repository("127.0.0.1:5000/me/app", "127.0.0.1:5000/me/app2")
    assert not cosign.same_repository("not a reference", "127.0.0.1:5000/me/app")


@pytest.mark.parametrize("folder", ["cosign-simplesigning-key", "cosign-simplesigning-key-rekor"])
def test_payload_is_byte_for_byte_what_cosign_signed(folder: str) -> None:
    signed = (VECTORS / folder / "payload.json").read_bytes()
    claims = cosign.read_payload(signed)
    assert claims is not None
    assert cosign.payload(claims.docker_reference, claims.manifest_digest) == signed
    # The image manifest the payload names is the one in the vector.
    manifest = (VECTORS / folder / "image-manifest.json").read_bytes()
    assert claims.manifest_digest == "sha256:" + hashlib.sha256(manifest).hexdigest()


def test_signature_manifest_and_config_have_cosigns_shape() -> None:
    payload = (VECTORS / "cosign-simplesigning-key" / "payload.json").read_bytes()
    signature = (VECTORS / "cosign-simplesigning-key" / "signature.b64").read_text().strip()
    entry = cosign.layer(payload, base64.b64decode(signature))
    # The descriptor the vector's README gives for this signature's layer.
    assert entry == {
        "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
        "size": 261,
        "digest": "sha256:cf482371" + entry["digest"][len("sha256:cf482371") :],
        "annotations": {"dev.cosignproject.cosign/signature": signature},
    }
    assert entry["digest"] == "sha256:" + hashlib.sha256(payload).hexdigest()
    body, config = cosign.signature_manifest([entry])
    assert len(config) == 233
    assert config == (
        b'{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":'
        b'"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["'
        + entry["digest"].encode()
        + b'"]},"config":{}}'
    )
    manifest = json.loads(body)
    assert manifest == {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": 233,
            "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
        },
        "layers": [entry],
    }
    # Two signatures: two layers, two history entries, two diff_ids, in order.
    second = cosign.layer(payload, b"another signature")
    _, two = cosign.signature_manifest([entry, second])
    rootfs = json.loads(two)
    assert rootfs["rootfs"]["diff_ids"] == [entry["digest"], second["digest"]]
    assert len(rootfs["history"]) == 2
    assert cosign.signature_tag("sha256:" + "ab" * 32) == "sha256-" + "ab" * 32 + ".sig"


def test_unusual_payloads_are_not_payloads() -> None:
    for text in (
        b"",
        b"[]",
        b"null",
        b'{"critical":null}',
        b'{"critical":{"identity":{"docker-reference":1},"image":{"docker-manifest-digest":"x"},'
        b'"type":"cosign container image signature"}}',
        b'{"critical":{"identity":{"docker-reference":"a/b"},"image":{"docker-manifest-digest":'
        b'"sha256:00"},"type":"something else"}}',
    ):
        assert cosign.read_payload(text) is None, text
    private = keys.generate_private_key()
    public = keys.load_public_key(keys.public_key_pem(private))
    # Validly signed, but not a payload: refused as such, not as a bad signature.
    bogus = b'{"hello":"world"}'
    verdict = cosign.judge(
        bogus,
        {cosign.SIGNATURE_ANNOTATION: base64.b64encode(keys.sign(private, bogus)).decode()},
        [("mine", public)],
        "sha256:" + "0" * 64,
        "a/b",
    )
    assert verdict.failure is cosign.Failure.NOT_A_PAYLOAD
    assert cosign.signature_layers({"layers": "nope"}) == []
    assert cosign.signature_layers([]) == []
    assert cosign.signature_layers(
        {"layers": [1, {"mediaType": "x"}, {"mediaType": cosign.SIMPLESIGNING}]}
    ) == [{"mediaType": cosign.SIMPLESIGNING}]
