"""Signature policies in the metadata store, on every database: kept by scope, replaced whole,
and the more specific one found for a repository."""

from __future__ import annotations

from dockyard.metadata.base import SignaturePolicy

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
