"""Tag lists and the catalog, paged by `n` and `last` as the spec describes.

A page is read from the store's index where it starts (`Catalog.tags_page`,
`list_repositories`): one more name than the page holds tells whether another page follows.
Its cost is the page's, not the listing's, however many tags or repositories there are. The
store may answer a page it read before from memory, until the next commit anywhere: nothing
here has to be told of changes.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import is_valid_tag
from dockyard.metadata.base import MetadataStore, PagedTag

# The most entries one page carries; larger `n` (or none) is clamped and a Link points on.
MAX_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    next_last: str | None  # set when more entries follow
    limit: int


def page_limit(n: int | None) -> int:
    """The page's length for `n` (None: as many as one page carries)."""
    return min(n if n is not None else MAX_PAGE, MAX_PAGE)


def page_of(names: Sequence[str], limit: int) -> Page:
    """A page from up to `limit` + 1 names read after `last`: the extra one says more follow.
    Its items are a list of its own (the names may be the store's remembered tuple)."""
    if len(names) > limit:
        return Page(list(names[:limit]), names[limit - 1], limit)
    return Page(list(names), None, limit)


def parse_page_size(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    # isascii(): isdigit() also takes "²" and other scripts' digits, which int() refuses.
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise RegistryError(
            ErrorCode.PARAMETER_UNSUPPORTED,
            "n must be a non-negative integer",
            detail={"n": raw[:50]},
        )
    return int(raw)


def paginate(names: list[str], n: int | None, last: str | None) -> Page:
    """One page of an already sorted list held whole (a cached repository's upstream list)."""
    if n == 0:
        return Page([], None, 0)
    limit = page_limit(n)
    start = 0 if last is None else bisect.bisect_right(names, last)
    return page_of(names[start : start + limit + 1], limit)


class ListingService:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    async def tags(self, repository: str, n: int | None, last: str | None) -> Page:
        limit = page_limit(n)
        # n=0 still answers NAME_UNKNOWN for a repository without content: one index probe.
        found = await self.meta.tags_page(repository, limit + 1 if limit else 0, last)
        if found is None:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": repository})
        return page_of(found, limit)

    async def tag_details(
        self, repository: str, n: int | None, last: str | None
    ) -> tuple[list[dict[str, object]], str | None]:
        """A page of tags with their digests and push times, in the order and paging of
        `tags`, as the `_dockyard/tags` extension sends them; the second item is the `last`
        of the next page, if one follows."""
        if n == 0:
            return [], None
        limit = page_limit(n)
        found = await self.meta.tags_in_order(repository, last, limit + 1)
        if found is None:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": repository})
        following = found[limit - 1].tag if len(found) > limit else None
        return [_detail(tag) for tag in found[:limit]], following

    async def tag_history(self, repository: str, tag: str) -> list[dict[str, object]]:
        """The `_dockyard/tag-history` extension: where `tag` pointed and when, newest first,
        `digest` null where it was deleted. Kept after the repository goes, so asked by name."""
        history = await self.meta.tag_history(repository, tag) if is_valid_tag(tag) else []
        if not history:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"tag": tag[:200]})
        return [{"digest": change.digest, "at": _iso(change.at)} for change in history]

    async def last_pushes(self) -> dict[str, float]:
        """When each repository last had a manifest pushed or a tag moved (read each time:
        pushes appear at once)."""
        return await self.meta.last_pushes()

    async def catalog(self, n: int | None, last: str | None) -> Page:
        limit = page_limit(n)
        if limit == 0:
            return Page([], None, 0)
        return page_of(await self.meta.list_repositories(limit + 1, last), limit)


def _detail(tag: PagedTag) -> dict[str, object]:
    return {
        "tag": tag.tag,
        "digest": tag.manifest.digest,
        "mediaType": tag.manifest.media_type,
        "size": tag.manifest.size,
        "pushed": _iso(tag.pushed_at),
    }


def _iso(timestamp: float) -> str:
    """UTC, to the millisecond: two changes of a tag within a second stay apart."""
    moment = datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")
