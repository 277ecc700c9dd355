"""Notation signatures verified offline: the real tool's envelopes (JWS in an OCI layout, COSE and
JWS over one manifest) accepted, and every way a signature can be wrong refused with its own kind.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from dockyard.core import mediatypes as mt
from dockyard.core.digest import sha256_of
from dockyard.core.manifest import Descriptor
from dockyard.core.notation import verify_notation
from dockyard.core.signature_failure import Failure, SignatureRefused
from dockyard.core.trust_store import TrustStoreError, load_trust_store
from tests.support.notary import DAY, NOW, JwsSigner, cose_envelope, issue

DATA = Path(__file__).parents[1] / "data" / "signatures"
LAYOUT = DATA / "notation-jws-oci-layout"
BLOBS = LAYOUT / "oci-layout" / "blobs" / "sha256"
ENVELOPES = DATA / "notation-cose-and-jws-envelopes"
JWS = "application/jose+json"
COSE = "application/cose"


def blob(digest: str) -> bytes:
    return (BLOBS / digest.removeprefix("sha256:")).read_bytes()


def descriptor_of(body: bytes) -> Descriptor:
    return Descriptor(mt.OCI_MANIFEST, sha256_of(body), len(body))


@pytest.fixture(scope="module")
def layout_case() -> tuple[bytes, Descriptor]:
    """The layout's JWS envelope (its signature manifest's layer) and the image it signs."""
    index = json.loads((LAYOUT / "oci-layout" / "index.json").read_bytes())
    image = next(
        e
        for e in index["manifests"]
        if e.get("annotations", {}).get("org.opencontainers.image.ref.name") == "v1"
    )
    signature = json.loads(
        blob("sha256:90ceaff260d657d797c408ac73564a9c7bb9d86055877c2a811f0e63b8c6524f")
    )
    assert signature["config"]["mediaType"] == "application/vnd.cncf.notary.signature"
    assert signature["subject"]["digest"] == image["digest"]
    layer = signature["layers"][0]
    assert layer["mediaType"] == JWS
    return blob(layer["digest"]), descriptor_of(blob(image["digest"]))


@pytest.fixture(scope="module")
def alpine() -> list[x509.Certificate]:
    """The self-signed certificate both envelopes carry: upstream ships no trust store for it."""
    document = json.loads((ENVELOPES / "jws_signature.sig").read_bytes())
    return [x509.load_der_x509_certificate(base64.b64decode(document["header"]["x5c"][-1]))]


def refused(failure: Failure, *args: object, **kwargs: object) -> SignatureRefused:
    with pytest.raises(SignatureRefused) as caught:
        verify_notation(*args, **kwargs)  # type: ignore[arg-type]
    assert caught.value.failure is failure, str(caught.value)
    return caught.value


def test_the_layout_signature_verifies_against_its_trust_store(layout_case) -> None:
    envelope, image = layout_case
    for store in (LAYOUT / "truststore", LAYOUT / "truststore" / "x509" / "ca" / "e2e"):
        found = verify_notation(JWS, envelope, image, load_trust_store(store))
        assert found.signer == found.root == "CN=e2e,O=Notary,L=Seattle,ST=WA,C=US"
        assert found.target == image
        assert found.signing_time == dt.datetime.fromisoformat("2023-06-27T13:30:33+08:00")


def test_cose_and_jws_envelopes_of_one_manifest_verify(alpine) -> None:
    image = descriptor_of((ENVELOPES / "image-manifest.json").read_bytes())
    for media_type, name in ((JWS, "jws_signature.sig"), (COSE, "cose_signature.sig")):
        found = verify_notation(media_type, (ENVELOPES / name).read_bytes(), image, alpine)
        assert found.envelope_type == media_type
        assert found.signer.startswith("CN=alpine,")


def _tamper_jws_payload(envelope: bytes, digest: str) -> bytes:
    document = json.loads(envelope)
    payload = json.loads(base64.urlsafe_b64decode(document["payload"] + "=="))
    payload["targetArtifact"]["digest"] = digest
    text = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    document["payload"] = text
    return json.dumps(document).encode()


def test_a_tampered_jws_payload_is_refused(layout_case) -> None:
    envelope, image = layout_case
    roots = load_trust_store(LAYOUT / "truststore")
    other = "sha256:" + "1" * 64
    tampered = _tamper_jws_payload(envelope, other)
    error = refused(
        Failure.BAD_SIGNATURE, JWS, tampered, Descriptor(image.media_type, other, image.size), roots
    )
    assert "changed after signing" in str(error)


def test_a_tampered_jws_signature_is_refused(layout_case) -> None:
    envelope, image = layout_case
    document = json.loads(envelope)
    signature = bytearray(base64.urlsafe_b64decode(document["signature"] + "=="))
    signature[10] ^= 1
    document["signature"] = base64.urlsafe_b64encode(bytes(signature)).rstrip(b"=").decode()
    refused(
        Failure.BAD_SIGNATURE,
        JWS,
        json.dumps(document).encode(),
        image,
        load_trust_store(LAYOUT / "truststore"),
    )


def test_a_tampered_jws_protected_header_is_refused(alpine) -> None:
    image = descriptor_of((ENVELOPES / "image-manifest.json").read_bytes())
    document = json.loads((ENVELOPES / "jws_signature.sig").read_bytes())
    header = json.loads(base64.urlsafe_b64decode(document["protected"] + "=="))
    header["io.cncf.notary.signingTime"] = "2024-01-01T00:00:00Z"
    document["protected"] = (
        base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    )
    refused(Failure.BAD_SIGNATURE, JWS, json.dumps(document).encode(), image, alpine)


def test_a_tampered_cose_payload_is_refused(alpine) -> None:
    image = descriptor_of((ENVELOPES / "image-manifest.json").read_bytes())
    message = cbor2.loads((ENVELOPES / "cose_signature.sig").read_bytes())
    protected, unprotected, payload, signature = message.value
    changed = payload.replace(image.digest.encode(), ("sha256:" + "2" * 64).encode())
    assert changed != payload
    tampered = cbor2.dumps(cbor2.CBORTag(18, [protected, dict(unprotected), changed, signature]))
    refused(Failure.BAD_SIGNATURE, COSE, tampered, image, alpine)
    # The untouched message, re-encoded the same way, still verifies: the change is what failed.
    same = cbor2.dumps(cbor2.CBORTag(18, [protected, dict(unprotected), payload, signature]))
    verify_notation(COSE, same, image, alpine)


def test_a_signature_for_another_manifest_is_refused(layout_case, alpine) -> None:
    envelope, _image = layout_case
    other = descriptor_of((ENVELOPES / "image-manifest.json").read_bytes())
    error = refused(
        Failure.WRONG_ARTIFACT, JWS, envelope, other, load_trust_store(LAYOUT / "truststore")
    )
    assert other.digest in str(error) and "b8479de3" in str(error)


def test_a_manifest_of_another_size_or_type_is_refused(layout_case) -> None:
    envelope, image = layout_case
    roots = load_trust_store(LAYOUT / "truststore")
    refused(
        Failure.WRONG_ARTIFACT, JWS, envelope, Descriptor(image.media_type, image.digest, 1), roots
    )
    refused(
        Failure.WRONG_ARTIFACT,
        JWS,
        envelope,
        Descriptor(mt.OCI_INDEX, image.digest, image.size),
        roots,
    )


def test_a_root_outside_the_trust_store_is_refused(layout_case, alpine) -> None:
    envelope, image = layout_case
    error = refused(Failure.UNTRUSTED_ROOT, JWS, envelope, image, alpine)
    assert "CN=e2e" in str(error) and "CN=alpine" in str(error)


IMAGE = Descriptor(mt.OCI_MANIFEST, "sha256:" + "a" * 64, 1234)


def sign(chain, **fields) -> bytes:
    return JwsSigner(chain, **fields).sign(IMAGE.media_type, IMAGE.digest, IMAGE.size)


@pytest.fixture(scope="module")
def ca():
    root = issue("Test Root", ca=True, not_before=NOW - 3650 * DAY, not_after=NOW + 3650 * DAY)
    return root, issue("Test Intermediate", root, ca=True)


def test_a_chain_through_an_intermediate_verifies(ca) -> None:
    root, intermediate = ca
    leaf = issue("signer", intermediate)
    found = verify_notation(JWS, sign([leaf, intermediate, root]), IMAGE, [root.certificate])
    assert found.signer.startswith("CN=signer") and found.root.startswith("CN=Test Root")
    # The chain may stop below the root: the trust store's root signed its last certificate.
    verify_notation(JWS, sign([leaf, intermediate]), IMAGE, [root.certificate])


def test_an_ecdsa_signer_verifies(ca) -> None:
    root, intermediate = ca
    leaf = issue("ecdsa signer", intermediate, key=ec.generate_private_key(ec.SECP256R1()))
    verify_notation(JWS, sign([leaf, intermediate]), IMAGE, [root.certificate])


def test_a_certificate_expired_now_is_refused(ca) -> None:
    root, intermediate = ca
    leaf = issue("expired", intermediate, not_before=NOW - 60 * DAY, not_after=NOW - 10 * DAY)
    # Signed while the certificate was valid: the signing time is the signer's own claim, so
    # without a trusted timestamp the certificate must still be valid now.
    envelope = sign([leaf, intermediate], signing_time=NOW - 20 * DAY)
    error = refused(Failure.EXPIRED_CERTIFICATE, JWS, envelope, IMAGE, [root.certificate])
    assert (
        "CN=expired" in str(error) and "expired on" in str(error) and "verification" in str(error)
    )


def test_a_certificate_expired_at_signing_time_is_refused(ca) -> None:
    root, intermediate = ca
    leaf = issue("short-lived", intermediate, not_before=NOW - 60 * DAY, not_after=NOW + 60 * DAY)
    envelope = sign([leaf, intermediate], signing_time=NOW - 90 * DAY)
    error = refused(Failure.EXPIRED_CERTIFICATE, JWS, envelope, IMAGE, [root.certificate])
    assert "signing time" in str(error)


def test_an_expired_intermediate_is_refused(ca) -> None:
    root, _ = ca
    old = issue("Old Intermediate", root, ca=True, not_before=NOW - 90 * DAY, not_after=NOW - DAY)
    leaf = issue("signer", old, not_before=NOW - 60 * DAY)
    error = refused(Failure.EXPIRED_CERTIFICATE, JWS, sign([leaf, old]), IMAGE, [root.certificate])
    assert "Old Intermediate" in str(error)


def test_a_certificate_not_for_code_signing_is_refused(ca) -> None:
    root, intermediate = ca
    leaf = issue("web server", intermediate, code_signing=False)
    error = refused(Failure.KEY_USAGE, JWS, sign([leaf, intermediate]), IMAGE, [root.certificate])
    assert "codeSigning" in str(error)


def test_a_leaf_posing_as_an_issuer_is_refused(ca) -> None:
    root, intermediate = ca
    not_a_ca = issue("not a CA", intermediate)
    leaf = issue("signer", not_a_ca)
    error = refused(
        Failure.BROKEN_CHAIN, JWS, sign([leaf, not_a_ca, intermediate]), IMAGE, [root.certificate]
    )
    assert "not a CA" in str(error)


def test_a_chain_out_of_order_is_refused(ca) -> None:
    root, intermediate = ca
    leaf = issue("signer", intermediate)
    refused(Failure.BROKEN_CHAIN, JWS, sign([leaf, root, intermediate]), IMAGE, [root.certificate])


def test_a_chain_from_another_root_is_refused(ca) -> None:
    root, _ = ca
    stranger = issue("Stranger Root", ca=True)
    leaf = issue("signer", stranger)
    refused(Failure.UNTRUSTED_ROOT, JWS, sign([leaf, stranger]), IMAGE, [root.certificate])


def test_an_expired_signature_is_refused(ca) -> None:
    root, intermediate = ca
    leaf = issue("signer", intermediate)
    expiry = {"io.cncf.notary.expiry": (NOW - DAY).isoformat(timespec="seconds")}
    envelope = sign(
        [leaf, intermediate], extra_protected=expiry, extra_critical=["io.cncf.notary.expiry"]
    )
    refused(Failure.SIGNATURE_EXPIRED, JWS, envelope, IMAGE, [root.certificate])
    # An expiry the signer did not mark critical could be ignored by older verifiers: refused.
    envelope = sign([leaf, intermediate], extra_protected=expiry)
    refused(Failure.MALFORMED, JWS, envelope, IMAGE, [root.certificate])


def test_an_unknown_critical_header_is_refused(ca) -> None:
    root, intermediate = ca
    leaf = issue("signer", intermediate)
    envelope = sign(
        [leaf, intermediate], extra_protected={"x-extra": "1"}, extra_critical=["x-extra"]
    )
    error = refused(Failure.UNSUPPORTED, JWS, envelope, IMAGE, [root.certificate])
    assert "x-extra" in str(error)


def test_another_signing_scheme_is_refused(ca) -> None:
    root, intermediate = ca
    leaf = issue("signer", intermediate)
    scheme = {"io.cncf.notary.signingScheme": "notary.x509.signingAuthority"}
    refused(
        Failure.UNSUPPORTED,
        JWS,
        sign([leaf, intermediate], extra_protected=scheme),
        IMAGE,
        [root.certificate],
    )


@pytest.mark.parametrize(
    "envelope",
    [
        b"",
        b"[]",
        b"{",
        b'{"payload":"a","protected":"b","signature":"c"}',
        b"\xff" * 64,
        b"{}" * 10,
    ],
)
def test_malformed_envelopes_are_refused(envelope: bytes, alpine) -> None:
    refused(Failure.MALFORMED, JWS, envelope, IMAGE, alpine)


@pytest.mark.parametrize(
    "envelope",
    [b"", b"\xff", cbor2.dumps([1, 2, 3, 4]), cbor2.dumps(cbor2.CBORTag(18, [b"", {}, None, b""]))],
)
def test_malformed_cose_messages_are_refused(envelope: bytes, alpine) -> None:
    refused(Failure.MALFORMED, COSE, envelope, IMAGE, alpine)


def test_an_oversized_envelope_is_refused(alpine) -> None:
    refused(Failure.MALFORMED, JWS, b" " * (5 * 1024 * 1024), IMAGE, alpine)


def test_an_envelope_of_another_type_is_refused(alpine) -> None:
    refused(Failure.UNSUPPORTED, "application/octet-stream", b"{}", IMAGE, alpine)


def test_a_trust_store_without_certificates_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TrustStoreError, match="no certificates"):
        load_trust_store(tmp_path)
    (tmp_path / "bad.crt").write_bytes(b"not a certificate")
    with pytest.raises(TrustStoreError, match=r"bad\.crt"):
        load_trust_store(tmp_path)
    with pytest.raises(TrustStoreError, match="no such"):
        load_trust_store(tmp_path / "missing")


def test_timestamping_authorities_are_not_roots(tmp_path: Path) -> None:
    tsa = tmp_path / "x509" / "tsa" / "e2e"
    tsa.mkdir(parents=True)
    (tsa / "e2e.crt").write_bytes((LAYOUT / "truststore/x509/ca/e2e/e2e.crt").read_bytes())
    with pytest.raises(TrustStoreError):
        load_trust_store(tmp_path)


def test_a_cose_envelope_made_here_verifies_and_its_tampered_copy_does_not(ca) -> None:
    root, intermediate = ca
    leaf = issue("cose signer", intermediate)
    envelope = cose_envelope([leaf, intermediate], IMAGE.media_type, IMAGE.digest, IMAGE.size)
    found = verify_notation(COSE, envelope, IMAGE, [root.certificate])
    assert found.envelope_type == COSE and found.signer.startswith("CN=cose signer")
    tampered = envelope.replace(IMAGE.digest.encode(), ("sha256:" + "b" * 64).encode())
    refused(Failure.BAD_SIGNATURE, COSE, tampered, IMAGE, [root.certificate])
    # The COSE signing time is checked as the JWS one is.
    old = cose_envelope(
        [leaf, intermediate], IMAGE.media_type, IMAGE.digest, IMAGE.size, NOW - 400 * DAY
    )
    error = refused(Failure.EXPIRED_CERTIFICATE, COSE, old, IMAGE, [root.certificate])
    assert "signing time" in str(error)
