"""A HEAD of a blob a cold pull has just had whole is answered without the upstream.

A cold pull's client gets the last bytes once the digest is checked, while the cache still
syncs and links its copy; a warm pull right after (CI: `test_cold_pull_then_warm_pull_asks_
the_upstream_nothing`) found the blob not yet linked, and its HEAD asked the upstream. The
download's size and its "verified" mark, kept in the cache's lock folder (so every worker
sees them) until the link is made, answer it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from dockyard.proxy.downloads import Downloads, _upload_id
from dockyard.proxy.service import ProxyService

DIGEST = "sha256:" + "cd" * 32
ROUTE = cast(Any, SimpleNamespace(local="docker.io/library/warm"))


def _downloads(lock_dir: Path) -> Downloads:
    return Downloads(
        blob_store=cast(Any, None),
        meta=cast(Any, None),
        lock=cast(Any, None),
        lock_dir=lock_dir,
        health=cast(Any, None),
        adoption=cast(Any, None),
        keep_if_manifest=cast(Any, None),
    )


class _NoUpstream:
    async def check(self, route: object, what: str) -> None:
        raise AssertionError("the upstream was asked")


def _head(downloads: Downloads) -> int:
    async def not_linked(route: object, digest: str) -> None:
        return None

    service = SimpleNamespace(cached_blob=not_linked, downloads=downloads, health=_NoUpstream())
    return asyncio.run(ProxyService.blob_size(cast(Any, service), ROUTE, DIGEST))


def test_a_verified_download_being_published_answers_a_head(tmp_path: Path) -> None:
    downloads = _downloads(tmp_path)
    upload_id = _upload_id(ROUTE, DIGEST)
    (tmp_path / f"{upload_id}.size").write_text("1234")
    assert downloads.verified_size(ROUTE, DIGEST) is None  # arriving, not yet checked
    (tmp_path / f"{upload_id}.verified").touch()
    assert downloads.verified_size(ROUTE, DIGEST) == 1234
    assert _head(downloads) == 1234


def test_another_repositorys_download_answers_nothing(tmp_path: Path) -> None:
    downloads = _downloads(tmp_path)
    other = cast(Any, SimpleNamespace(local="docker.io/library/other"))
    upload_id = _upload_id(other, DIGEST)
    (tmp_path / f"{upload_id}.size").write_text("1234")
    (tmp_path / f"{upload_id}.verified").touch()
    assert downloads.verified_size(ROUTE, DIGEST) is None
