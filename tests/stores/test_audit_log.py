"""The audit log's store on every database (revision 0015): records kept as given, read newest
first through each filter and a page at a time, pruned by age, copied by `dockyard migrate`."""

from __future__ import annotations

import asyncio

from dockyard.metadata.base import AuditEntry, AuditQuery

BASE = 1_800_000_000.0


def entry(i: int, **fields: object) -> AuditEntry:
    values: dict = {
        "at": BASE + i,
        "action": "manifest.push" if i % 2 else "user.create",
        "object": f"acme/app@sha256:{i:064x}" if i % 2 else f"user{i}",
        "account": "alice" if i % 3 else "bob",
        "token": "ci" if i % 3 == 1 else None,
        "address": f"192.0.2.{i}",
        "repository": "acme/app" if i % 2 else None,
        "detail": {"tags": [f"v{i}"]} if i % 2 else None,
    }
    values.update(fields)
    return AuditEntry(**values)


def test_records_are_read_back_newest_first_as_written(meta, run) -> None:
    for i in range(1, 7):
        run(meta.record_audit(entry(i)))
    found = run(meta.audit_entries(AuditQuery()))
    assert [e.at for e in found] == [BASE + i for i in range(6, 0, -1)]
    ids = [e.id for e in found]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 6
    first = found[-1]
    assert (first.action, first.object, first.account, first.token, first.address) == (
        "manifest.push",
        f"acme/app@sha256:{1:064x}",
        "alice",
        "ci",
        "192.0.2.1",
    )
    assert first.repository == "acme/app" and first.detail == {"tags": ["v1"]}
    assert found[0].detail is None and found[0].token is None


def test_filters_and_pages(meta, run) -> None:
    for i in range(1, 11):
        run(meta.record_audit(entry(i)))

    def read(**query: object) -> list[float]:
        return [e.at - BASE for e in run(meta.audit_entries(AuditQuery(**query)))]

    assert read(account="bob") == [9, 6, 3]
    assert read(repository="acme/app") == [9, 7, 5, 3, 1]
    assert read(action="user.create") == [10, 8, 6, 4, 2]
    assert read(since=BASE + 4, until=BASE + 7) == [6, 5, 4]
    assert read(account="bob", action="user.create") == [6]
    assert read(account="nobody") == []
    pages, before = [], None
    while True:
        page = run(meta.audit_entries(AuditQuery(limit=3, before=before)))
        pages.append([e.at - BASE for e in page])
        if len(page) < 3:
            break
        before = page[-1].id
    assert pages == [[10, 9, 8], [7, 6, 5], [4, 3, 2], [1]]


def test_pruning_removes_only_older_records(meta, run) -> None:
    for i in range(1, 6):
        run(meta.record_audit(entry(i)))
    assert run(meta.prune_audit(BASE + 3)) == 2
    assert [e.at - BASE for e in run(meta.audit_entries(AuditQuery()))] == [5, 4, 3]
    assert run(meta.prune_audit(BASE + 3)) == 0


def test_concurrent_records_all_land(meta, run) -> None:
    async def many() -> None:
        await asyncio.gather(*(meta.record_audit(entry(i)) for i in range(1, 41)))

    run(many())
    found = run(meta.audit_entries(AuditQuery(limit=1000)))
    assert sorted(e.at - BASE for e in found) == list(range(1, 41))


def test_records_are_copied_by_migrate(meta, run) -> None:
    run(meta.record_audit(entry(1)))
    rows = run(meta.export_rows())
    assert [r["object"] for r in rows["audit_log"]] == [f"acme/app@sha256:{1:064x}"]


def test_a_push_and_a_delete_commit_with_their_record_or_not_at_all(meta, run) -> None:
    from dockyard.metadata.base import ChildrenMissing, ManifestRecord, Reference
    from tests.stores.test_repository_pages import IMAGE_TYPE, digest

    index = "application/vnd.oci.image.index.v1+json"
    run(meta.link_blob("acme/app", digest(1), 10))
    pushed = entry(1, action="manifest.push", object="acme/app@" + digest(5))
    run(
        meta.put_manifest(
            "acme/app",
            ManifestRecord(digest(5), IMAGE_TYPE, 100),
            [Reference(digest(1), "blob")],
            ["v1"],
            audit=pushed,
        )
    )
    refused = entry(2, action="manifest.push", object="acme/app@" + digest(6))
    try:
        run(
            meta.put_manifest(
                "acme/app",
                ManifestRecord(digest(6), index, 100),
                [Reference(digest(99), "manifest")],  # a child the repository does not hold
                ["v2"],
                children_required=True,
                audit=refused,
            )
        )
    except ChildrenMissing:
        pass
    else:
        raise AssertionError("a missing child was accepted")
    # Deleting what is not there changes nothing, and records nothing.
    assert not run(meta.delete_tag("acme/app", "nope", audit=entry(3, action="tag.delete")))
    assert run(meta.delete_tag("acme/app", "v1", audit=entry(4, action="tag.delete")))
    assert run(
        meta.delete_manifest("acme/app", digest(5), audit=entry(5, action="manifest.delete"))
    )
    assert not run(
        meta.delete_manifest("acme/app", digest(5), audit=entry(6, action="manifest.delete"))
    )
    found = run(meta.audit_entries(AuditQuery()))
    assert [(e.at - BASE, e.action) for e in found] == [
        (5, "manifest.delete"),
        (4, "tag.delete"),
        (1, "manifest.push"),
    ]
