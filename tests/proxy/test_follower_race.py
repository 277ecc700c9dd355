"""A follower of another process's download must not call it failed when it ends in between
the follower's two looks (CI saw a 503 "the upstream download failed" from a follower on
S3+PostgreSQL while the leader, in the other worker, had cached the blob): the leader's lock
is looked at before the link, as the leader links before it lets go of its lock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from dockyard.core.file_lock import open_lock_file, release, try_lock
from dockyard.proxy.downloads import Downloads

DIGEST = "sha256:" + "ab" * 32


def failed(meta: object, lock_dir: Path, upload_id: str) -> bool:
    """Whether a follower in this process, with `meta` as its store, calls the download
    failed (only the store and the leader's lock file are looked at)."""
    downloads = Downloads(
        blob_store=cast(Any, None),
        meta=cast(Any, meta),
        lock=cast(Any, None),
        lock_dir=lock_dir,
        health=cast(Any, None),
        adoption=cast(Any, None),
        keep_if_manifest=cast(Any, None),
    )
    route = cast(Any, SimpleNamespace(local="docker.io/library/together"))
    return asyncio.run(downloads._failed(route, DIGEST, upload_id))


class LeaderFinishesDuringTheLook:
    """The metadata store of a follower: while it is asked whether the blob is linked (and
    answers from before the link), the leader in another process links it and lets go."""

    def __init__(self, leader_fd: int) -> None:
        self.leader_fd = leader_fd
        self.linked = False

    async def linked_blob_size(self, repository: str, digest: str) -> int | None:
        answer = 5 if self.linked else None
        if not self.linked:
            self.linked = True
            release(self.leader_fd)
        return answer


def test_a_download_finishing_between_the_followers_looks_is_not_a_failure(
    tmp_path: Path,
) -> None:
    upload_id = "u" * 32
    leader_fd = open_lock_file(tmp_path / f"{upload_id}.lock")
    assert try_lock(leader_fd)
    meta = LeaderFinishesDuringTheLook(leader_fd)
    assert failed(meta, tmp_path, upload_id) is False


def test_a_leader_gone_without_linking_is_a_failure(tmp_path: Path) -> None:
    class NeverLinked:
        async def linked_blob_size(self, repository: str, digest: str) -> int | None:
            return None

    assert failed(NeverLinked(), tmp_path, "v" * 32) is True
