"""core/sigstore_bundle.py on cosign's keyless `attest --new-bundle-format` vector (a sigstore
bundle v0.3 with a DSSE attestation): accepted offline with the public-good trusted root and the
identity it carries, and every tampered copy refused for its own reason."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.core import checkpoint, keys, merkle_proof, sigstore, sigstore_bundle
from dockyard.core.signature_failure import Failure, SignatureRefused

VECTORS = Path(__file__).parents[1] / "data" / "signatures"
BUNDLE = VECTORS / "cosign-bundle-v0.3-dsse-attestation-keyless" / "oci-attestation.sigstore.json"
TRUSTED_ROOT = VECTORS / "sigstore-public-good-trusted-root" / "trusted_root.json"
IDENTITY = "cody@soyland.com"
ISSUER = "https://github.com/login/oauth"
SUBJECT = "sha256:732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"
PREDICATE = "https://cosign.sigstore.dev/attestation/v1"


def _trust(**changes: Any) -> sigstore.Trust:
    roots, intermediates, rekor = sigstore.load_trusted_root(TRUSTED_ROOT.read_bytes())
    options: dict[str, Any] = {
        "roots": tuple(roots),
        "intermediates": tuple(intermediates),
        "rekor_keys": tuple(rekor),
        "identity": IDENTITY,
        "issuer": ISSUER,
    }
    options.update(changes)
    return sigstore.Trust(**options)


def _document() -> dict[str, Any]:
    return dict(json.loads(BUNDLE.read_bytes()))


def _entry(document: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = document["verificationMaterial"]["tlogEntries"][0]
    return entry


def _verify(
    document: dict[str, Any] | bytes,
    trust: sigstore.Trust | None = None,
    digest: str = SUBJECT,
    wanted: str | None = PREDICATE,
) -> sigstore_bundle.Verified:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return sigstore_bundle.verify_bundle(data, trust or _trust(), digest, wanted)


def _refused(document: dict[str, Any] | bytes, **options: Any) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as caught:
        _verify(document, **options)
    return caught.value


def _public(key: ec.EllipticCurvePublicKey) -> keys.PublicKey:
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return keys.load_public_key(pem)


def _flip(encoded: str, at: int = -8) -> str:
    raw = bytearray(base64.b64decode(encoded))
    raw[at] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


def test_the_vector_verifies_with_the_identity_it_carries() -> None:
    verified = _verify(BUNDLE.read_bytes())
    assert verified.identity == IDENTITY
    assert verified.issuer == ISSUER
    assert verified.integrated_time == 1740770291
    assert verified.log_index == 175508996
    assert verified.statement.predicate_type == PREDICATE
    assert SUBJECT in (digest for _, digest in verified.statement.subjects)
    # No predicate type asked: any will do.
    assert _verify(BUNDLE.read_bytes(), wanted=None).identity == IDENTITY


def test_a_changed_payload_is_refused_by_the_dsse_signature() -> None:
    document = _document()
    statement = json.loads(base64.b64decode(document["dsseEnvelope"]["payload"]))
    statement["predicate"]["Data"] = '{"foo": "baz"}\n'
    document["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    assert _refused(document).failure is Failure.BAD_SIGNATURE


def test_a_changed_signature_is_refused() -> None:
    document = _document()
    signature = document["dsseEnvelope"]["signatures"][0]
    signature["sig"] = _flip(signature["sig"])
    assert _refused(document).failure is Failure.BAD_SIGNATURE


def test_a_changed_certificate_does_not_chain_to_fulcio() -> None:
    document = _document()
    certificate = document["verificationMaterial"]["certificate"]
    certificate["rawBytes"] = _flip(certificate["rawBytes"], at=-5)
    assert _refused(document).failure is Failure.UNTRUSTED_ROOT


def test_a_changed_signed_entry_timestamp_is_refused() -> None:
    document = _document()
    promise = _entry(document)["inclusionPromise"]
    promise["signedEntryTimestamp"] = _flip(promise["signedEntryTimestamp"])
    refused = _refused(document)
    assert refused.failure is Failure.NOT_LOGGED
    assert "signed entry timestamp" in str(refused)


@pytest.mark.parametrize("which", [0, 7, 15])
def test_one_changed_hash_of_the_inclusion_proof_is_refused(which: int) -> None:
    document = _document()
    hashes = _entry(document)["inclusionProof"]["hashes"]
    hashes[which] = _flip(hashes[which])
    refused = _refused(document)
    assert refused.failure is Failure.NOT_LOGGED
    assert "inclusion proof" in str(refused)


def test_a_changed_root_hash_is_refused() -> None:
    document = _document()
    proof = _entry(document)["inclusionProof"]
    proof["rootHash"] = _flip(proof["rootHash"])
    refused = _refused(document)
    assert refused.failure is Failure.NOT_LOGGED
    assert "does not lead to the root hash" in str(refused)


def test_a_checkpoint_of_another_tree_is_refused() -> None:
    document = _document()
    proof = _entry(document)["inclusionProof"]
    note = proof["checkpoint"]["envelope"]
    proof["checkpoint"]["envelope"] = note.replace("\n53604735\n", "\n53604736\n", 1)
    refused = _refused(document)
    assert refused.failure is Failure.NOT_LOGGED
    assert "checkpoint is of a tree of 53604736 entries" in str(refused)


def test_a_changed_checkpoint_text_is_refused_by_its_signature() -> None:
    document = _document()
    proof = _entry(document)["inclusionProof"]
    note = proof["checkpoint"]["envelope"]
    proof["checkpoint"]["envelope"] = note.replace("rekor.sigstore.dev - ", "rekor.example - ", 1)
    refused = _refused(document)
    assert refused.failure is Failure.NOT_LOGGED
    assert "checkpoint's signature" in str(refused)


def test_a_changed_checkpoint_signature_is_refused() -> None:
    document = _document()
    proof = _entry(document)["inclusionProof"]
    text, _, line = proof["checkpoint"]["envelope"].partition("\n\n")
    name, _, encoded = line.strip().rpartition(" ")
    proof["checkpoint"]["envelope"] = f"{text}\n\n{name} {_flip(encoded)}\n"
    refused = _refused(document)
    assert refused.failure is Failure.NOT_LOGGED
    assert "checkpoint's signature" in str(refused)


def test_a_checkpoint_signature_hinted_for_another_key_is_refused() -> None:
    document = _document()
    proof = _entry(document)["inclusionProof"]
    text, _, line = proof["checkpoint"]["envelope"].partition("\n\n")
    name, _, encoded = line.strip().rpartition(" ")
    proof["checkpoint"]["envelope"] = f"{text}\n\n{name} {_flip(encoded, at=0)}\n"
    assert "checkpoint's signature" in str(_refused(document))


def _relogged(
    document: dict[str, Any], change: Callable[[dict[str, Any]], None]
) -> tuple[dict[str, Any], sigstore.Trust]:
    """The entry changed by `change` and its SET signed again by a Rekor key of the test's own,
    with a trust holding that key: what a compromised or other log could claim."""
    rekor = ec.generate_private_key(ec.SECP256R1())
    entry = _entry(document)
    change(entry)
    log_id = keys.fingerprint(rekor).removeprefix("sha256:")
    entry["logId"] = {"keyId": base64.b64encode(bytes.fromhex(log_id)).decode()}
    signed = sigstore.canonical_set_payload(
        {
            "body": entry["canonicalizedBody"],
            "integratedTime": int(entry["integratedTime"]),
            "logID": log_id,
            "logIndex": int(entry["logIndex"]),
        }
    )
    entry["inclusionPromise"] = {
        "signedEntryTimestamp": base64.b64encode(keys.sign(rekor, signed)).decode()
    }
    public = _public(rekor.public_key())
    return document, _trust(rekor_keys=(public,))


def test_an_integrated_time_outside_the_certificate_validity_is_refused() -> None:
    def later(entry: dict[str, Any]) -> None:
        entry["integratedTime"] = str(int(entry["integratedTime"]) + 3600)

    document, trust = _relogged(_document(), later)
    refused = _refused(document, trust=trust)
    assert refused.failure is Failure.EXPIRED_CERTIFICATE
    assert "outside the certificate's validity" in str(refused)


def test_a_log_entry_of_another_payload_is_refused() -> None:
    def other_payload(entry: dict[str, Any]) -> None:
        body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
        body["spec"]["payloadHash"]["value"] = hashlib.sha256(b"other").hexdigest()
        entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()

    document, trust = _relogged(_document(), other_payload)
    refused = _refused(document, trust=trust)
    assert refused.failure is Failure.NOT_LOGGED
    assert "another payload" in str(refused)


def test_a_log_entry_of_another_envelope_is_refused() -> None:
    def other_envelope(entry: dict[str, Any]) -> None:
        body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
        body["spec"]["envelopeHash"]["value"] = hashlib.sha256(b"other").hexdigest()
        entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()

    document, trust = _relogged(_document(), other_envelope)
    refused = _refused(document, trust=trust)
    assert refused.failure is Failure.NOT_LOGGED
    assert "another envelope" in str(refused)


def test_a_log_entry_of_another_signature_is_refused() -> None:
    def other_signature(entry: dict[str, Any]) -> None:
        body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
        item = body["spec"]["signatures"][0]
        item["signature"] = _flip(item["signature"])
        entry["canonicalizedBody"] = base64.b64encode(json.dumps(body).encode()).decode()

    document, trust = _relogged(_document(), other_signature)
    assert "another signature or certificate" in str(_refused(document, trust=trust))


def test_a_relogged_entry_still_needs_its_inclusion_proof() -> None:
    # A SET alone from the test's own key: the proof and checkpoint of the real log do not
    # carry over (the checkpoint is signed by the public-good key, not this one).
    document, trust = _relogged(_document(), lambda entry: None)
    assert "checkpoint's signature" in str(_refused(document, trust=trust))


def test_a_wrong_identity_or_issuer_is_refused() -> None:
    refused = _refused(BUNDLE.read_bytes(), trust=_trust(identity="someone@example.com"))
    assert refused.failure is Failure.WRONG_IDENTITY
    assert IDENTITY in str(refused)
    refused = _refused(BUNDLE.read_bytes(), trust=_trust(issuer="https://accounts.google.com"))
    assert refused.failure is Failure.WRONG_IDENTITY
    assert ISSUER in str(refused)


def test_a_trusted_root_without_the_right_rekor_key_is_refused() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    trust = _trust(rekor_keys=(_public(other),))
    refused = _refused(BUNDLE.read_bytes(), trust=trust)
    assert refused.failure is Failure.NOT_LOGGED
    assert "not in the trusted root" in str(refused)


def test_a_trusted_root_without_the_fulcio_ca_is_refused() -> None:
    other_roots = sigstore.load_certificates(
        (VECTORS / "cosign-simplesigning-keyless-fulcio-rekor" / "fulcio-root.pem").read_bytes()
    )
    refused = _refused(
        BUNDLE.read_bytes(), trust=_trust(roots=tuple(other_roots), intermediates=())
    )
    assert refused.failure is Failure.UNTRUSTED_ROOT


def test_another_image_or_predicate_type_is_refused() -> None:
    other = "sha256:" + hashlib.sha256(b"another image").hexdigest()
    assert _refused(BUNDLE.read_bytes(), digest=other).failure is Failure.WRONG_ARTIFACT
    refused = _refused(BUNDLE.read_bytes(), wanted="https://slsa.dev/provenance/v1")
    assert refused.failure is Failure.WRONG_PREDICATE


@pytest.mark.parametrize(
    ("data", "failure"),
    [
        (b"not json", Failure.MALFORMED),
        (b"[]", Failure.MALFORMED),
        (json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.1+json"}), None),
        (b"{" + b" " * sigstore_bundle.MAX_BUNDLE_BYTES + b"}", Failure.MALFORMED),
    ],
)
def test_malformed_or_other_bundles_are_refused(data: bytes | str, failure: Failure | None) -> None:
    raw = data.encode() if isinstance(data, str) else data
    assert _refused(raw).failure is (failure or Failure.UNSUPPORTED)


def test_an_entry_of_another_kind_or_without_proofs_is_refused() -> None:
    document = _document()
    _entry(document)["kindVersion"] = {"kind": "hashedrekord", "version": "0.0.1"}
    assert _refused(document).failure is Failure.UNSUPPORTED
    document = _document()
    del _entry(document)["inclusionProof"]
    assert "no inclusion proof" in str(_refused(document))
    document = _document()
    document["verificationMaterial"]["tlogEntries"] = []
    assert _refused(document).failure is Failure.NOT_LOGGED
    document = _document()
    _entry(document)["inclusionProof"]["logIndex"] = "-1"
    assert _refused(document).failure is Failure.MALFORMED


def _tree_root(leaves: list[bytes]) -> bytes:
    """RFC 6962's Merkle tree hash, straight from its recursive definition."""
    if len(leaves) == 1:
        return merkle_proof.leaf_hash(leaves[0])
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return merkle_proof.node_hash(_tree_root(leaves[:split]), _tree_root(leaves[split:]))


def _audit_path(index: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    if index < split:
        return [*_audit_path(index, leaves[:split]), _tree_root(leaves[split:])]
    return [*_audit_path(index - split, leaves[split:]), _tree_root(leaves[:split])]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 8, 13])
def test_every_leaf_of_small_trees_proves_and_no_other(size: int) -> None:
    leaves = [f"entry {n}".encode() for n in range(size)]
    root = _tree_root(leaves)
    for index, entry in enumerate(leaves):
        path = _audit_path(index, leaves)
        leaf = merkle_proof.leaf_hash(entry)
        assert merkle_proof.root_from_path(index, size, leaf, path) == root
        assert merkle_proof.root_from_path(index, size, leaf, [*path, root]) != root
        if path:
            assert merkle_proof.root_from_path(index, size, leaf, path[:-1]) != root
        if size > 1:
            assert merkle_proof.root_from_path((index + 1) % size, size, leaf, path) != root
    assert merkle_proof.root_from_path(size, size, b"\x00" * 32, []) is None


def test_checkpoint_notes_that_are_not_signed_notes_are_not_read() -> None:
    note = _entry(_document())["inclusionProof"]["checkpoint"]["envelope"]
    assert checkpoint.parse(note) is not None
    for broken in [
        note.replace("\n\n", "\n"),
        note.rstrip("\n"),
        note.replace("\u2014 ", "- "),
        note.replace("\n53604735\n", "\n0053604735\n"),
        note.replace("\n53604735\n", "\n\u00b2\n"),
        "origin\n1\n!!\n\n\u2014 name AAAAAAAA\n",
    ]:
        assert checkpoint.parse(broken) is None


def test_any_one_changed_character_is_refused_or_harmless() -> None:
    """Every single-character change anywhere in the bundle either leaves it meaning the same
    (JSON whitespace) or is refused as SignatureRefused, never another exception."""
    text = BUNDLE.read_text()
    randomness = random.Random(18)
    refused = 0
    for _ in range(300):
        at = randomness.randrange(len(text))
        changed = text[:at] + randomness.choice('A0+/="{}[],: a\t\u2014') + text[at + 1 :]
        try:
            _verify(changed.encode())
        except SignatureRefused:
            refused += 1
            continue
        assert json.loads(changed) == json.loads(text)
    assert refused > 250
