"""cosign's key-based signature format, byte for byte: the simple-signing payload, the signature
manifest and its config, and the checks that make one of its layers a valid signature.

A signature is one layer of an image manifest stored under the tag `sha256-<hex>.sig` (or, as an
OCI 1.1 referrer, a manifest whose `subject` is the image). The layer's blob is the payload
that was signed, a JSON document naming the image's manifest digest and repository; the layer
annotation `dev.cosignproject.cosign/signature` holds the base64 signature over those exact
bytes. The config is what go-containerregistry writes for an image built from nothing but
those layers: one history entry and one diff_id (the payload's digest) per layer.

Pure functions over bytes and dicts; fetching and storing is the client's business.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dockyard.core import keys, sigstore
from dockyard.core import mediatypes as mt
from dockyard.core.reference import InvalidReference, parse_reference

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
# The artifact type cosign gives its signatures in OCI 1.1 referrer mode; read, never written.
COSIGN_ARTIFACT_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
SIGNATURE_TYPE = "cosign container image signature"
# Go's zero time, as go-containerregistry writes it for an image built from nothing.
ZERO_TIME = "0001-01-01T00:00:00Z"
# A payload is a few hundred bytes; anything far larger is not one, and is not downloaded.
MAX_PAYLOAD_BYTES = 64 * 1024
# Signature layers kept under one `.sig` tag; a registry could otherwise hand out endless work.
MAX_SIGNATURE_LAYERS = 1000


def signature_tag(digest: str) -> str:
    """`sha256:<hex>` → `sha256-<hex>.sig`, where cosign keeps an image's signatures."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}-{encoded}.sig"


def payload(docker_reference: str, manifest_digest: str) -> bytes:
    """The simple-signing payload cosign signs, with its key order and `"optional":null`."""
    document = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def config(payload_digests: Sequence[str]) -> bytes:
    """The signature image's config: 233 bytes for one layer, as cosign v2 writes it."""
    document = {
        "architecture": "",
        "created": ZERO_TIME,
        "history": [{"created": ZERO_TIME} for _ in payload_digests],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": list(payload_digests)},
        "config": {},
    }
    return json.dumps(document, separators=(",", ":")).encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(payload_bytes: bytes, signature: bytes) -> dict[str, Any]:
    """The descriptor of one signature layer: the payload blob, the signature annotation."""
    return {
        "mediaType": SIMPLESIGNING,
        "size": len(payload_bytes),
        "digest": sha256(payload_bytes),
        "annotations": {SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()},
    }


def signature_manifest(
    layers: Sequence[dict[str, Any]],
    *,
    subject: dict[str, Any] | None = None,
    artifact_type: str = SIMPLESIGNING,
) -> tuple[bytes, bytes]:
    """(manifest, config) bytes of a signature image holding `layers` in order. With a
    `subject`, the manifest is an OCI 1.1 referrer of that image, typed `artifact_type` (a
    signature, unless an attestation's envelope type is given)."""
    config_bytes = config([entry["digest"] for entry in layers])
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
    }
    if subject is not None:
        document["artifactType"] = artifact_type
    document["config"] = {
        "mediaType": mt.OCI_CONFIG,
        "size": len(config_bytes),
        "digest": sha256(config_bytes),
    }
    document["layers"] = [dict(entry) for entry in layers]
    if subject is not None:
        document["subject"] = {key: subject[key] for key in ("mediaType", "digest", "size")}
    return json.dumps(document, separators=(",", ":")).encode(), config_bytes


def signature_layers(document: Any) -> list[dict[str, Any]]:
    """The simple-signing layers of a parsed signature manifest (other layers ignored)."""
    if not isinstance(document, dict) or not isinstance(document.get("layers"), list):
        return []
    return [
        entry
        for entry in document["layers"][:MAX_SIGNATURE_LAYERS]
        if isinstance(entry, dict) and entry.get("mediaType") == SIMPLESIGNING
    ]


class Failure(enum.Enum):
    """Why a signature layer is not a valid signature of the image, each with its message."""

    NO_SIGNATURE = "the layer has no dev.cosignproject.cosign/signature annotation"
    NOT_BASE64 = "the signature annotation is not base64"
    INVALID_SIGNATURE = "signature invalid: no given key verifies it over the payload"
    NOT_A_PAYLOAD = "the payload is not a cosign simple-signing payload"
    OTHER_DIGEST = "payload for another digest"
    OTHER_REPOSITORY = "payload for another repository"
    CERTIFICATE_INVALID = "the signing certificate cannot be used"
    CERTIFICATE_UNTRUSTED = (
        "certificate not trusted: it does not chain to the given roots at the time Rekor "
        "logged the signature"
    )
    OTHER_IDENTITY = "certificate for another identity or issuer"
    NOT_LOGGED = "no Rekor bundle (dev.sigstore.cosign/bundle) to check the signature offline"
    LOG_INVALID = "the Rekor bundle does not verify"
    LOG_MISMATCH = "the Rekor entry is for another payload, signature or key"


@dataclass(frozen=True)
class Claims:
    """What a payload asserts: this manifest digest, in this repository."""

    docker_reference: str
    manifest_digest: str


def read_payload(payload_bytes: bytes) -> Claims | None:
    """The claims of a simple-signing payload; None when it is not one."""
    try:
        document = json.loads(payload_bytes)
        critical = document["critical"]
        claims = Claims(
            critical["identity"]["docker-reference"], critical["image"]["docker-manifest-digest"]
        )
        kind = critical["type"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(claims.docker_reference, str) or not isinstance(claims.manifest_digest, str):
        return None
    return claims if kind == SIGNATURE_TYPE else None


def same_repository(docker_reference: str, repository: str) -> bool:
    """Whether a payload's `docker-reference` names `repository` (`registry/path`), compared
    after docker's normalisation (`index.docker.io/library/x` is `docker.io/library/x`); a tag
    or digest in the reference is ignored, as cosign ignores it."""
    try:
        signed = parse_reference(docker_reference, default_tag=None)
        wanted = parse_reference(repository, default_tag=None)
    except InvalidReference:
        return False
    return signed.name == wanted.name


@dataclass(frozen=True)
class Verdict:
    """One signature layer judged: which key verified it, or why it is refused."""

    failure: Failure | None
    key_name: str | None = None
    claims: Claims | None = None
    detail: str | None = None

    @property
    def valid(self) -> bool:
        return self.failure is None


def judge(
    payload_bytes: bytes,
    annotations: Any,
    trusted: Sequence[tuple[str, keys.PublicKey]],
    manifest_digest: str,
    repository: str,
    keyless: sigstore.Trust | None = None,
) -> Verdict:
    """Whether a layer (its exact payload bytes and annotations) is a valid signature of
    `manifest_digest` in `repository`: by one of the `trusted` (name, key) pairs, or, given
    `keyless` trust, by a certificate chaining to its roots and logged in Rekor. With Rekor
    keys in `keyless`, key-based signatures must carry a matching Rekor bundle too.

    The signature is checked first, over the bytes as stored: a payload no key signed says
    nothing, whatever digest it names."""
    if not isinstance(annotations, dict):
        annotations = {}
    encoded = annotations.get(SIGNATURE_ANNOTATION)
    if not isinstance(encoded, str) or not encoded:
        return Verdict(Failure.NO_SIGNATURE)
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return Verdict(Failure.NOT_BASE64)
    signer = _signer(payload_bytes, signature, annotations, trusted, keyless)
    if signer.failure is not None:
        return signer
    claims = read_payload(payload_bytes)
    if claims is None:
        return Verdict(Failure.NOT_A_PAYLOAD, signer.key_name)
    if claims.manifest_digest != manifest_digest:
        return Verdict(Failure.OTHER_DIGEST, signer.key_name, claims)
    if not same_repository(claims.docker_reference, repository):
        return Verdict(Failure.OTHER_REPOSITORY, signer.key_name, claims)
    return Verdict(None, signer.key_name, claims)


def _signer(
    payload_bytes: bytes,
    signature: bytes,
    annotations: dict[str, Any],
    trusted: Sequence[tuple[str, keys.PublicKey]],
    keyless: sigstore.Trust | None,
) -> Verdict:
    """Who signed: a verdict without failure names the key or certificate."""
    for name, key in trusted:
        if keys.verify(key, signature, payload_bytes):
            if keyless is not None and keyless.rekor_keys:
                logged = _logged(
                    payload_bytes, signature, annotations, keys.public_key_pem(key), keyless
                )
                if not isinstance(logged, sigstore.LogEntry):
                    return Verdict(logged.failure, name, detail=logged.detail)
            return Verdict(None, name)
    certificate_pem = annotations.get(CERTIFICATE_ANNOTATION)
    if keyless is None or not keyless.roots or not isinstance(certificate_pem, str):
        return Verdict(Failure.INVALID_SIGNATURE)
    try:
        [certificate] = sigstore.load_certificates(certificate_pem.encode())
        chain_pem = annotations.get(CHAIN_ANNOTATION)
        chain = sigstore.load_certificates(chain_pem.encode()) if chain_pem else []
        certificate_key = sigstore.certificate_key(certificate)
    except (ValueError, TypeError, AttributeError) as exc:
        return Verdict(Failure.CERTIFICATE_INVALID, detail=str(exc) or None)
    if not keys.verify(certificate_key, signature, payload_bytes):
        return Verdict(Failure.INVALID_SIGNATURE)
    names = sigstore.identities(certificate)
    issuer = sigstore.issuer(certificate)
    who = f"certificate for {', '.join(names) or '?'} (issuer {issuer or '?'})"
    logged = _logged(payload_bytes, signature, annotations, certificate_pem.encode(), keyless)
    if not isinstance(logged, sigstore.LogEntry):
        return Verdict(logged.failure, who, detail=logged.detail)
    if not sigstore.chain_is_trusted(certificate, chain, keyless, logged.integrated_time):
        return Verdict(Failure.CERTIFICATE_UNTRUSTED, who)
    if (keyless.identity is not None and keyless.identity not in names) or (
        keyless.issuer is not None and keyless.issuer != issuer
    ):
        return Verdict(Failure.OTHER_IDENTITY, who, detail=who)
    return Verdict(None, who)


def _logged(
    payload_bytes: bytes,
    signature: bytes,
    annotations: dict[str, Any],
    public_pem: bytes,
    keyless: sigstore.Trust,
) -> sigstore.LogEntry | Verdict:
    """The Rekor entry of this signature, its SET verified and its contents matched."""
    bundle = annotations.get(BUNDLE_ANNOTATION)
    if not isinstance(bundle, str) or not bundle:
        return Verdict(Failure.NOT_LOGGED)
    entry = sigstore.read_bundle(bundle, keyless)
    if isinstance(entry, str):
        return Verdict(Failure.LOG_INVALID, detail=entry)
    if not sigstore.entry_matches(entry.body, payload_bytes, signature, public_pem):
        return Verdict(Failure.LOG_MISMATCH)
    return entry
