"""A repository's description and README, and its tags a page at a time, on every database:
what the repository and image pages of the web UI read."""

from __future__ import annotations

import asyncio

from dockyard.metadata.accounts import DELETE_REPOSITORIES, TRANSFER_REPOSITORIES
from dockyard.metadata.base import ManifestRecord, Reference, RepositoryInfo

IMAGE_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def push(meta, run, repository: str, manifest: str, tags: list[str], size: int = 100) -> None:
    run(meta.link_blob(repository, digest(1), 10))
    run(
        meta.put_manifest(
            repository,
            ManifestRecord(manifest, IMAGE_TYPE, size, annotations={"a": "b"}),
            [Reference(digest(1), "blob")],
            tags,
        )
    )


def test_info_is_kept_per_repository_and_only_with_content(meta, run) -> None:
    assert run(meta.repository_info("acme/app")) is None
    assert run(meta.set_repository_info("acme/app", "d", "r", 1.0)) is None
    assert run(meta.repository_info("acme/app")) is None, "nothing is written for no content"
    push(meta, run, "acme/app", digest(10), ["v1"])
    push(meta, run, "acme/app-two", digest(10), ["v1"])
    assert run(meta.repository_info("acme/app")) == RepositoryInfo("", "", None)
    written = run(meta.set_repository_info("acme/app", "A web app", "# App\n", 2.0))
    assert written == RepositoryInfo("A web app", "# App\n", 2.0)
    # One field at a time leaves the other as it was.
    run(meta.set_repository_info("acme/app", None, "# App v2\n", 3.0))
    run(meta.set_repository_info("acme/app", "Still a web app", None, 4.0))
    assert run(meta.repository_info("acme/app")) == RepositoryInfo(
        "Still a web app", "# App v2\n", 4.0
    )
    assert run(meta.repository_info("acme/app-two")) == RepositoryInfo()
    unicode_readme = "caf\u00e9 \u2603 " + "x" * 100_000
    run(meta.set_repository_info("acme/app-two", "", unicode_readme, 5.0))
    assert run(meta.repository_info("acme/app-two")).readme == unicode_readme


def test_deleting_the_repository_takes_its_info(meta, run) -> None:
    push(meta, run, "acme/app", digest(10), ["v1"])
    run(meta.set_repository_info("acme/app", "d", "r", 1.0))
    assert run(meta.delete_repository("acme/app")) is not None
    assert run(meta.repository_info("acme/app")) is None
    push(meta, run, "acme/app", digest(11), ["v2"])
    assert run(meta.repository_info("acme/app")) == RepositoryInfo(), "a new push starts afresh"
    exported = run(meta.export_rows())
    assert exported["repository_info"] == []


def test_concurrent_edits_of_different_fields_both_stay(meta, run) -> None:
    push(meta, run, "acme/app", digest(10), ["v1"])

    async def both() -> None:
        await asyncio.gather(
            *(meta.set_repository_info("acme/app", f"d{i}", None, float(i)) for i in range(5)),
            *(meta.set_repository_info("acme/app", None, f"r{i}", float(i)) for i in range(5)),
        )

    run(both())
    info = run(meta.repository_info("acme/app"))
    assert info.description.startswith("d") and info.readme.startswith("r")


def test_a_page_of_tags_is_filtered_sorted_and_counted(meta, run) -> None:
    assert run(meta.tag_page("acme/app", "", 0, 50)) is None
    for n in range(30):
        push(meta, run, "acme/app", digest(100 + n), [f"v{n:02d}"], size=100 + n)
    push(meta, run, "acme/app", digest(200), ["Latest", "stable_1", "stable%1"])
    page = run(meta.tag_page("acme/app", "", 0, 10))
    assert page.total == 33
    assert len(page.tags) == 10
    assert page.last_pushed == max(t.pushed_at for t in page.tags)
    # Newest push first; the three tags pushed together by name.
    assert [t.tag for t in page.tags[:3]] == ["Latest", "stable%1", "stable_1"]
    assert page.tags[3].tag == "v29" and page.tags[3].manifest.size == 129
    assert page.tags[0].manifest == ManifestRecord(
        digest(200),
        IMAGE_TYPE,
        100,
        annotations={"a": "b"},
        created_at=page.tags[0].manifest.created_at,
    )
    rest = run(meta.tag_page("acme/app", "", 30, 10))
    assert [t.tag for t in rest.tags] == ["v02", "v01", "v00"]
    # A substring, ignoring case; `_` and `%` are themselves, not wildcards.
    assert [t.tag for t in run(meta.tag_page("acme/app", "LATE", 0, 50)).tags] == ["Latest"]
    assert [t.tag for t in run(meta.tag_page("acme/app", "e_", 0, 50)).tags] == ["stable_1"]
    assert [t.tag for t in run(meta.tag_page("acme/app", "e%", 0, 50)).tags] == ["stable%1"]
    filtered = run(meta.tag_page("acme/app", "v1", 0, 50))
    assert filtered.total == 10 and {t.tag for t in filtered.tags} == {f"v1{n}" for n in range(10)}
    assert run(meta.tag_page("acme/app", "nothing", 0, 50)).total == 0
    # Moving a tag makes it the newest.
    push(meta, run, "acme/app", digest(300), ["v05"])
    assert run(meta.tag_page("acme/app", "", 0, 1)).tags[0].tag == "v05"


def test_tags_in_order_go_by_bytes_after_last_with_their_records(meta, run) -> None:
    """What the `_dockyard/tags` extension reads: byte order on every database."""
    assert run(meta.tags_in_order("acme/app", None, 10)) is None
    push(meta, run, "acme/app", digest(100), ["b", "B", "_x", "a-1", "a.1", "a_1"], size=111)
    push(meta, run, "acme/app", digest(200), ["A", "9"], size=222)
    push(meta, run, "acme/other", digest(300), ["0"])
    found = run(meta.tags_in_order("acme/app", None, 100))
    assert [t.tag for t in found] == ["9", "A", "B", "_x", "a-1", "a.1", "a_1", "b"]
    assert {t.tag: t.manifest.size for t in found}["A"] == 222
    assert all(t.manifest.digest == digest(100) for t in found if t.tag not in ("A", "9"))
    after = run(meta.tags_in_order("acme/app", "B", 3))
    assert [t.tag for t in after] == ["_x", "a-1", "a.1"]
    assert run(meta.tags_in_order("acme/app", "b", 3)) == []


def test_manifests_by_digest_and_tags_of_stay_in_their_repository(meta, run) -> None:
    push(meta, run, "acme/app", digest(10), ["v1", "latest"])
    push(meta, run, "acme/app", digest(11), [])
    push(meta, run, "acme/other", digest(12), ["v1"])
    run(
        meta.put_manifest(
            "acme/app",
            ManifestRecord(digest(13), INDEX_TYPE, 300),
            [Reference(digest(10), "manifest"), Reference(digest(11), "manifest")],
            ["multi"],
        )
    )
    found = run(meta.manifests_by_digest("acme/app", [digest(10), digest(11), digest(12)]))
    assert set(found) == {digest(10), digest(11)}
    assert found[digest(11)].media_type == IMAGE_TYPE
    assert run(meta.manifests_by_digest("acme/app", [])) == {}
    assert run(meta.manifests_by_digest("nobody/app", [digest(10)])) == {}
    assert run(meta.tags_of("acme/app", digest(10))) == ["latest", "v1"]
    assert run(meta.tags_of("acme/app", digest(11))) == []
    assert run(meta.tags_of("acme/other", digest(10))) == []


def test_an_account_removed_takes_or_hands_over_its_repositories_info(meta, run) -> None:
    for name in ("alice", "bob", "heir"):
        run(meta.accounts.create_account(name, "user", None, False, 1.0))
    push(meta, run, "alice/app", digest(10), ["v1"])
    push(meta, run, "bob/app", digest(11), ["v1"])
    run(meta.set_repository_info("alice/app", "alice's", "# a", 2.0))
    run(meta.set_repository_info("bob/app", "bob's", "# b", 2.0))
    assert run(meta.accounts.delete_account("alice", DELETE_REPOSITORIES, None, 3.0))
    assert run(meta.repository_info("alice/app")) is None
    push(meta, run, "alice/app", digest(12), ["v2"])
    assert run(meta.repository_info("alice/app")) == RepositoryInfo()
    # Handed over, the namespace becomes an organisation the heir owns: names and info stay.
    assert run(meta.accounts.delete_account("bob", TRANSFER_REPOSITORIES, "heir", 4.0))
    moved = run(meta.repository_info("bob/app"))
    assert moved is not None and (moved.description, moved.readme) == ("bob's", "# b")
