"""Retention policies on every database: the tags they expire, the dry run that changes
nothing, and removal that never takes a tag pushed again or held immutable."""

from __future__ import annotations

import pytest

from dockyard.metadata.base import ManifestRecord, RetentionPolicy, TagImmutable
from dockyard.service.retention import RetentionService, checked_policy

DIGESTS = ["sha256:" + f"{i:x}" * 64 for i in range(1, 8)]
DAY = 86400.0


def record(digest: str) -> ManifestRecord:
    return ManifestRecord(digest, "application/vnd.oci.image.manifest.v1+json", 100)


def push(meta, run, repository: str, tags: list[str]) -> None:
    """Each tag a manifest of its own, pushed in the order given (one after the other)."""
    for i, tag in enumerate(tags):
        run(meta.put_manifest(repository, record(DIGESTS[i % len(DIGESTS)]), [], [tag]))


def tags_of(meta, run, repository: str) -> list[str]:
    return run(meta.list_tags(repository, None, None))


def test_policies_are_kept_by_scope(meta, run) -> None:
    run(meta.set_retention_policy(RetentionPolicy("acme", 3, None, "v*"), 1.0))
    run(meta.set_retention_policy(RetentionPolicy("acme/app", None, 86400, None), 1.0))
    run(meta.set_retention_policy(RetentionPolicy("acme_x", 1), 1.0))
    assert [p.scope for p in run(meta.retention_policies("acme"))] == ["acme", "acme/app"]
    assert run(meta.retention_policies("acme"))[0] == RetentionPolicy("acme", 3, None, "v*")
    run(meta.set_retention_policy(RetentionPolicy("acme", 5), 2.0))  # replaces
    assert run(meta.retention_policies("acme"))[0] == RetentionPolicy("acme", 5)
    assert len(run(meta.retention_policies())) == 3
    assert run(meta.remove_retention_policy("acme")) is True
    assert run(meta.remove_retention_policy("acme")) is False


def test_keep_last_dry_run_then_apply(meta, run) -> None:
    service = RetentionService(meta)
    push(meta, run, "acme/app", ["a", "b", "c", "d", "v1"])
    push(meta, run, "other/app", ["a", "b", "c"])
    policy = checked_policy("acme", 2, None, "v*")
    dry = run(service.plan("acme", policy))
    # Most recent first: v1 and d are the last two; v1 matches `keep` anyway.
    assert [(e.repository, e.tag) for e in dry] == [
        ("acme/app", "c"),
        ("acme/app", "b"),
        ("acme/app", "a"),
    ]
    assert tags_of(meta, run, "acme/app") == ["a", "b", "c", "d", "v1"], "a dry run changes nothing"
    assert run(service.plan("acme")) == [], "nothing stored yet"
    run(service.set(policy))
    assert [e.tag for e in run(service.apply("acme"))] == ["c", "b", "a"]
    assert tags_of(meta, run, "acme/app") == ["d", "v1"]
    assert tags_of(meta, run, "other/app") == ["a", "b", "c"], "other namespaces untouched"
    assert run(service.apply("acme")) == []


def test_older_than_and_the_repository_policy_wins(meta, run) -> None:
    service = RetentionService(meta)
    push(meta, run, "acme/app", ["old1", "old2", "new"])
    push(meta, run, "acme/web", ["old1", "old2", "new"])
    tags = {t.tag: t.pushed_at for t in run(meta.pushed_tags("acme/app"))}
    now = tags["new"] + 10 * DAY  # every tag is ten days old then
    run(service.set(checked_policy("acme", None, "30d", None)))
    assert run(service.plan("acme", now=now)) == []
    run(service.set(checked_policy("acme/web", 1, "7d", None)))
    gone = run(service.plan("acme", now=now))
    assert [(e.repository, e.tag, e.policy) for e in gone] == [
        ("acme/web", "old2", "acme/web"),
        ("acme/web", "old1", "acme/web"),
    ]


def test_immutable_and_re_pushed_tags_are_never_removed(meta, run) -> None:
    service = RetentionService(meta)
    push(meta, run, "acme/app", ["v1", "v2", "latest", "x"])
    run(meta.add_tag_rule("acme", "v*", 1.0))
    run(service.set(checked_policy("acme", 1, None, None)))
    plan = run(service.plan("acme"))
    assert sorted(e.tag for e in plan) == ["latest"], "immutable tags are not planned"
    # A tag pushed again after the plan was read stays.
    run(meta.put_manifest("acme/app", record(DIGESTS[5]), [], ["latest"]))
    assert run(meta.expire_tag("acme/app", "latest", plan[0].pushed_at)) is False
    assert "latest" in tags_of(meta, run, "acme/app")
    v1 = next(t for t in run(meta.pushed_tags("acme")) if t.tag == "v1")
    with pytest.raises(TagImmutable):
        run(meta.expire_tag("acme/app", "v1", v1.pushed_at))


@pytest.mark.parametrize(
    ("keep_last", "older_than", "keep"),
    [(None, None, None), (-1, None, None), (None, "30", None), (None, "1y", None), (1, None, "**")],
)
def test_invalid_policies(keep_last, older_than, keep) -> None:
    from dockyard.core.errors import RegistryError

    with pytest.raises(RegistryError):
        checked_policy("acme", keep_last, older_than, keep)
