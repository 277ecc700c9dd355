"""DSSE attestations verified offline: cosign's `attest-blob` envelope accepted with its key,
and a tampered copy, another key, another subject and another predicate type refused."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from dockyard.core import keys
from dockyard.core.cosign_attestation import attestation_layers, attestation_tag, layer
from dockyard.core.dsse import ENVELOPE_TYPE, IN_TOTO, open_envelope, pae, seal
from dockyard.core.in_toto import (
    PREDICATE_TYPES,
    check_statement,
    predicate_type,
    statement,
)
from dockyard.core.signature_failure import Failure, SignatureRefused

VECTOR = Path(__file__).parents[1] / "data" / "signatures" / "cosign-dsse-attest-blob-key"
SLSA_02 = "https://slsa.dev/provenance/v0.2"


@pytest.fixture(scope="module")
def cosign_key() -> list[tuple[str, keys.PublicKey]]:
    return [("cosign.pub", keys.load_public_key((VECTOR / "cosign.pub").read_bytes()))]


@pytest.fixture(scope="module")
def blob_digest() -> str:
    return "sha256:" + hashlib.sha256((VECTOR / "blob.txt").read_bytes()).hexdigest()


def refused(failure: Failure, call, *args) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as caught:
        call(*args)
    assert caught.value.failure is failure, str(caught.value)
    return caught.value


def test_pae_is_the_spec_encoding() -> None:
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_the_cosign_vector_verifies(cosign_key, blob_digest) -> None:
    opened = open_envelope((VECTOR / "envelope.dsse.json").read_bytes(), cosign_key)
    assert opened.key_name == "cosign.pub" and opened.payload_type == IN_TOTO
    found = check_statement(opened.payload, blob_digest, predicate_type("slsaprovenance"))
    assert found.predicate_type == SLSA_02
    assert found.subjects == (("blob", blob_digest),)


def test_a_tampered_statement_is_refused(cosign_key) -> None:
    document = json.loads((VECTOR / "envelope.dsse.json").read_bytes())
    payload = json.loads(base64.b64decode(document["payload"]))
    payload["subject"][0]["digest"]["sha256"] = "0" * 64
    document["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    refused(Failure.BAD_SIGNATURE, open_envelope, json.dumps(document).encode(), cosign_key)


def test_a_changed_payload_type_is_refused(cosign_key) -> None:
    # PAE binds the type: the same payload under another type is not what was signed.
    document = json.loads((VECTOR / "envelope.dsse.json").read_bytes())
    document["payloadType"] = "application/json"
    refused(Failure.BAD_SIGNATURE, open_envelope, json.dumps(document).encode(), cosign_key)


def test_another_key_is_refused() -> None:
    other = [("other.pub", keys.generate_private_key().public_key())]
    refused(
        Failure.BAD_SIGNATURE, open_envelope, (VECTOR / "envelope.dsse.json").read_bytes(), other
    )


def test_a_statement_about_something_else_is_refused(cosign_key) -> None:
    opened = open_envelope((VECTOR / "envelope.dsse.json").read_bytes(), cosign_key)
    error = refused(
        Failure.WRONG_ARTIFACT, check_statement, opened.payload, "sha256:" + "1" * 64, None
    )
    assert "658781cd" in str(error)


def test_a_statement_of_another_predicate_type_is_refused(cosign_key, blob_digest) -> None:
    opened = open_envelope((VECTOR / "envelope.dsse.json").read_bytes(), cosign_key)
    error = refused(
        Failure.WRONG_PREDICATE,
        check_statement,
        opened.payload,
        blob_digest,
        PREDICATE_TYPES["spdx"],
    )
    assert SLSA_02 in str(error)


def test_seal_and_open_round_trip(blob_digest) -> None:
    private = keys.generate_private_key()
    payload = statement(
        "example.com/app", blob_digest, PREDICATE_TYPES["cyclonedx"], {"bomFormat": "CycloneDX"}
    )
    envelope = seal(private, IN_TOTO, payload)
    opened = open_envelope(envelope, [("mine", private.public_key())])
    assert opened.payload == payload
    found = check_statement(opened.payload, blob_digest, "https://cyclonedx.org/bom")
    assert found.subjects == (("example.com/app", blob_digest),)
    # Two signatures, the second by the trusted key: one that verifies is enough.
    document = json.loads(envelope)
    document["signatures"].insert(0, {"keyid": "", "sig": base64.b64encode(b"x" * 70).decode()})
    open_envelope(json.dumps(document).encode(), [("mine", private.public_key())])


@pytest.mark.parametrize(
    "envelope",
    [
        b"",
        b"[]",
        b'{"payloadType":"a"}',
        b'{"payloadType":"a","payload":"!!","signatures":[{"sig":""}]}',
        b'{"payloadType":"a","payload":"","signatures":[]}',
    ],
)
def test_malformed_envelopes_are_refused(envelope: bytes, cosign_key) -> None:
    refused(Failure.MALFORMED, open_envelope, envelope, cosign_key)


@pytest.mark.parametrize(
    "payload", [b"not json", b"{}", b'{"_type":"https://in-toto.io/Statement/v0.1"}']
)
def test_malformed_statements_are_refused(payload: bytes) -> None:
    refused(Failure.MALFORMED, check_statement, payload, "sha256:" + "1" * 64, None)


def test_predicate_type_names() -> None:
    assert predicate_type("slsaprovenance") == SLSA_02
    assert predicate_type("spdx") == "https://spdx.dev/Document"
    assert predicate_type("cyclonedx") == "https://cyclonedx.org/bom"
    assert predicate_type("https://example.com/p/v1") == "https://example.com/p/v1"
    for bad in ("sbom", "ftp://x", "https://", "https://a b"):
        with pytest.raises(ValueError, match="predicate type"):
            predicate_type(bad)


def test_the_att_layer_is_annotated_as_cosign_does() -> None:
    envelope = b'{"payloadType":"x"}'
    entry = layer(envelope, SLSA_02)
    assert entry["mediaType"] == ENVELOPE_TYPE == "application/vnd.dsse.envelope.v1+json"
    assert entry["annotations"] == {
        "dev.cosignproject.cosign/signature": "",
        "predicateType": SLSA_02,
    }
    assert entry["digest"] == "sha256:" + hashlib.sha256(envelope).hexdigest()
    assert attestation_tag("sha256:" + "ab" * 32) == "sha256-" + "ab" * 32 + ".att"
    assert attestation_layers({"layers": [entry, {"mediaType": "other"}, "junk"]}) == [entry]
