"""Immutable tag rules in the metadata store, and the check made in the tag-moving transaction,
on every database."""

from __future__ import annotations

import asyncio

import pytest

from dockyard.metadata.base import ManifestRecord, TagImmutable

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
SIG_TAG = "sha256-" + "1" * 64 + ".sig"


def record(digest: str) -> ManifestRecord:
    return ManifestRecord(digest, "application/vnd.oci.image.manifest.v1+json", 100)


def test_rules_are_kept_by_scope(meta, run) -> None:
    assert run(meta.add_tag_rule("acme", "v*", 1.0)) is True
    assert run(meta.add_tag_rule("acme", "v*", 2.0)) is False
    assert run(meta.add_tag_rule("acme/app", "release-*", 3.0)) is True
    assert run(meta.add_tag_rule("acme_x", "v*", 4.0)) is True  # `_` is no wildcard
    assert run(meta.add_tag_rule("acmex/app", "v*", 4.0)) is True
    listed = [(r.scope, r.pattern, r.created_at) for r in run(meta.tag_rules("acme"))]
    assert listed == [("acme", "v*", 1.0), ("acme/app", "release-*", 3.0)]
    assert [r.pattern for r in run(meta.tag_rules("acme/app"))] == ["release-*"]
    assert run(meta.remove_tag_rule("acme", "v*")) is True
    assert run(meta.remove_tag_rule("acme", "v*")) is False
    assert [r.scope for r in run(meta.tag_rules("acme"))] == ["acme/app"]


def test_an_immutable_tag_neither_moves_nor_goes(meta, run) -> None:
    run(meta.add_tag_rule("acme", "v*", 1.0))
    run(meta.put_manifest("acme/app", record(D1), [], ["v1", "latest"], immutable_checked=True))
    run(meta.put_manifest("acme/app", record(D2), [], [], immutable_checked=True))
    # The same manifest again: no move, so a retried push succeeds.
    run(meta.put_manifest("acme/app", record(D1), [], ["v1"], immutable_checked=True))
    with pytest.raises(TagImmutable) as refused:
        run(meta.put_manifest("acme/app", record(D2), [], ["latest", "v1"], immutable_checked=True))
    assert (refused.value.tag, refused.value.pattern, refused.value.scope) == ("v1", "v*", "acme")
    assert run(meta.resolve_tag("acme/app", "latest")).digest == D1, "nothing of it was stored"
    with pytest.raises(TagImmutable):
        run(meta.delete_tag("acme/app", "v1", immutable_checked=True))
    with pytest.raises(TagImmutable):
        run(meta.delete_manifest("acme/app", D1, immutable_checked=True))
    assert run(meta.resolve_tag("acme/app", "v1")).digest == D1
    assert run(meta.delete_tag("acme/app", "v2", immutable_checked=True)) is False
    assert run(meta.delete_manifest("acme/app", D2, immutable_checked=True)) is True
    # Another namespace's repository and the pull-through cache's writes are not held.
    run(meta.put_manifest("other/app", record(D1), [], ["v1"], immutable_checked=True))
    run(meta.put_manifest("other/app", record(D2), [], ["v1"], immutable_checked=True))
    run(meta.put_manifest("acme/app", record(D2), [], ["v1"]))
    assert run(meta.resolve_tag("acme/app", "v1")).digest == D2


def test_signature_tags_are_held_only_by_a_rule_naming_them(meta, run) -> None:
    run(meta.add_tag_rule("acme", "*", 1.0))
    run(meta.put_manifest("acme/app", record(D1), [], [SIG_TAG], immutable_checked=True))
    run(meta.put_manifest("acme/app", record(D2), [], [SIG_TAG], immutable_checked=True))
    assert run(meta.delete_tag("acme/app", SIG_TAG, immutable_checked=True)) is True
    run(meta.add_tag_rule("acme/app", "sha256-*.sig", 1.0))
    run(meta.put_manifest("acme/app", record(D1), [], [SIG_TAG], immutable_checked=True))
    with pytest.raises(TagImmutable) as refused:
        run(meta.put_manifest("acme/app", record(D2), [], [SIG_TAG], immutable_checked=True))
    assert refused.value.pattern == "sha256-*.sig"


def test_concurrent_pushes_to_a_new_immutable_tag_one_wins(meta, run) -> None:
    run(meta.add_tag_rule("acme", "v*", 1.0))
    digests = ["sha256:" + f"{i:x}" * 64 for i in range(1, 9)]

    async def race() -> list[BaseException | None]:
        return await asyncio.gather(
            *(
                meta.put_manifest("acme/race", record(d), [], ["v1"], immutable_checked=True)
                for d in digests
            ),
            return_exceptions=True,
        )

    outcomes = run(race())
    winners = [d for d, o in zip(digests, outcomes, strict=True) if o is None]
    assert len(winners) == 1, outcomes
    assert all(isinstance(o, TagImmutable) for o in outcomes if o is not None), outcomes
    assert run(meta.resolve_tag("acme/race", "v1")).digest == winners[0]
