"""Signature policies in the metadata store, on every database: kept by scope, replaced whole,
and the more specific one found for a repository."""

from __future__ import annotations

from dockyard.metadata.base import ManifestRecord, SignaturePolicy

KEY = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
ROOT = "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n"


def policy(scope: str, mode: str = "enforce", version: str = "v1") -> SignaturePolicy:
    return SignaturePolicy(scope, mode, (KEY,), (ROOT,), version, 1.5)


def test_policies_are_kept_by_scope_and_replaced_whole(meta, run) -> None:
    run(meta.set_signature_policy(policy("acme")))
    run(meta.set_signature_policy(policy("acme/app", "warn", "v2")))
    run(meta.set_signature_policy(policy("acme_x", "off", "v3")))  # `_` is no wildcard
    assert run(meta.signature_policies("acme")) == [
        policy("acme"),
        policy("acme/app", "warn", "v2"),
    ]
    replaced = SignaturePolicy("acme", "warn", (KEY, KEY + " "), (), "v4", 2.0)
    run(meta.set_signature_policy(replaced))
    assert run(meta.signature_policies("acme"))[0] == replaced
    assert run(meta.remove_signature_policy("acme")) is True
    assert run(meta.remove_signature_policy("acme")) is False
    assert [p.scope for p in run(meta.signature_policies("acme"))] == ["acme/app"]


def test_the_repository_policy_replaces_its_namespace_policy(meta, run) -> None:
    assert run(meta.signature_policy_for("acme/app")) is None
    run(meta.set_signature_policy(policy("acme")))
    assert run(meta.signature_policy_for("acme/app")).scope == "acme"
    assert run(meta.signature_policy_for("acme/deep/app")).scope == "acme"
    assert run(meta.signature_policy_for("acmex/app")) is None
    run(meta.set_signature_policy(policy("acme/app", "off", "v2")))
    assert run(meta.signature_policy_for("acme/app")) == policy("acme/app", "off", "v2")
    assert run(meta.signature_policy_for("acme/other")).scope == "acme"


def test_the_policy_is_read_with_the_digest_a_reference_resolves_to(meta, run) -> None:
    """What a remembered verification rests on (the `.sig` tag, a referrer's digest) is read
    with the policy; nothing is resolved for a repository without one."""
    signature = "sha256:" + "5" * 64
    record = ManifestRecord(digest=signature, media_type="application/json", size=5)
    run(meta.put_manifest("acme/app", record, [], ["sha256-abc.sig"]))
    run(meta.put_manifest("loose/app", record, [], ["sha256-abc.sig"]))
    assert run(meta.signature_policy_and_manifest("loose/app", "sha256-abc.sig")) == (None, None)
    run(meta.set_signature_policy(policy("acme")))
    found = run(meta.signature_policy_and_manifest("acme/app", "sha256-abc.sig"))
    assert found == (policy("acme"), signature)
    assert run(meta.signature_policy_and_manifest("acme/app", signature)) == (
        policy("acme"),
        signature,
    )
    assert run(meta.signature_policy_and_manifest("acme/app", None)) == (policy("acme"), None)
    assert run(meta.signature_policy_and_manifest("acme/app", "sha256-other.sig"))[1] is None
    assert run(meta.delete_tag("acme/app", "sha256-abc.sig"))
    assert run(meta.signature_policy_and_manifest("acme/app", "sha256-abc.sig"))[1] is None
    assert run(meta.signature_policy_and_manifest("acme/app", signature))[1] == signature
    run(meta.delete_manifest("acme/app", signature))
    assert run(meta.signature_policy_and_manifest("acme/app", signature))[1] is None
    # Another repository's signature is not this one's.
    assert run(meta.signature_policy_and_manifest("acme/other", signature))[1] is None
