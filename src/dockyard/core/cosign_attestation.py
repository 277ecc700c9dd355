"""Where and how cosign keeps an image's attestations: DSSE envelopes as layers of an image
under the tag `sha256-<hex>.att`, beside the signatures' `.sig`.

Each layer is one envelope (`application/vnd.dsse.envelope.v1+json`). Its signature is inside
the envelope, so the layer's `dev.cosignproject.cosign/signature` annotation is empty, as cosign
leaves it; the `predicateType` annotation says what the statement is without opening it. The
image around the layers is cosign's signature image (`dockyard.core.cosign.signature_manifest`).
"""

from __future__ import annotations

from typing import Any

from dockyard.core.cosign import SIGNATURE_ANNOTATION, sha256
from dockyard.core.dsse import ENVELOPE_TYPE

PREDICATE_ANNOTATION = "predicateType"
# Layers kept under one `.att` tag; a registry could otherwise hand out endless work.
MAX_ATTESTATION_LAYERS = 1000


def attestation_tag(digest: str) -> str:
    """`sha256:<hex>` → `sha256-<hex>.att`."""
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}-{encoded}.att"


def layer(envelope: bytes, predicate_type: str) -> dict[str, Any]:
    """The descriptor of one attestation layer, annotated as cosign annotates it."""
    return {
        "mediaType": ENVELOPE_TYPE,
        "size": len(envelope),
        "digest": sha256(envelope),
        "annotations": {SIGNATURE_ANNOTATION: "", PREDICATE_ANNOTATION: predicate_type},
    }


def attestation_layers(document: Any) -> list[dict[str, Any]]:
    """The DSSE layers of a parsed attestation image (other layers ignored)."""
    if not isinstance(document, dict) or not isinstance(document.get("layers"), list):
        return []
    return [
        entry
        for entry in document["layers"][:MAX_ATTESTATION_LAYERS]
        if isinstance(entry, dict) and entry.get("mediaType") == ENVELOPE_TYPE
    ]
