"""Tag lists and the catalog, paged by `n` and `last` as the spec describes.

Each server process keeps the tag lists it served last, and the catalog, with the version the
metadata store gave them: a request then costs one primary-key read to learn the list is still
current, not a read of every entry, which grows with the list (bench/README.md).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, datetime

from dockyard.core.bounded_cache import BoundedCache
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import is_valid_tag
from dockyard.metadata.base import MetadataStore, PagedTag

# The most entries one page carries; larger `n` is clamped and a Link points on.
MAX_PAGE = 10_000
# Tag lists kept per process: at most this many repositories, and this many names in all
# (also the largest catalog kept).
CACHED_REPOSITORIES = 64
CACHED_NAMES = 200_000


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    next_last: str | None  # set when more entries follow
    limit: int
    # Set when the page is a whole cached list: (its name, its version). Equal keys mean
    # equal pages, so a caller may keep what it rendered from one.
    whole: tuple[str, int] | None = None


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
    """One page of an already sorted list, as the store would have given it."""
    if n == 0:
        return Page([], None, 0)
    limit = min(n if n is not None else MAX_PAGE, MAX_PAGE)
    start = 0 if last is None else bisect.bisect_right(names, last)
    page = names[start : start + limit]
    if start + limit < len(names):
        return Page(page, page[-1], limit)
    return Page(page, None, limit)


class ListingService:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta
        # repository -> (tags version, its tags), bounded by repositories and by names
        self._tags: BoundedCache[str, tuple[int, list[str]]] = BoundedCache(
            CACHED_REPOSITORIES, max_weight=CACHED_NAMES, weigh=lambda entry: len(entry[1])
        )
        self._catalog: tuple[int, list[str]] | None = None

    async def tags(self, repository: str, n: int | None, last: str | None) -> Page:
        version = await self.meta.tags_version(repository)
        if version is None:
            raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": repository})
        cached = self._tags.get(repository)
        if cached is None or cached[0] != version:
            cached = await self.meta.all_tags(repository)
            if cached is None:
                raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": repository})
            self._tags.put(repository, cached)
        page = paginate(cached[1], n, last)
        if last is None and page.next_last is None and n != 0:
            page = Page(page.items, None, page.limit, whole=(repository, cached[0]))
        return page

    async def tag_details(
        self, repository: str, n: int | None, last: str | None
    ) -> tuple[list[dict[str, object]], str | None]:
        """A page of tags with their digests and push times, in the order and paging of
        `tags`, as the `_dockyard/tags` extension sends them; the second item is the `last`
        of the next page, if one follows."""
        if n == 0:
            return [], None
        limit = min(n if n is not None else MAX_PAGE, MAX_PAGE)
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
        version = await self.meta.catalog_version()
        cached = self._catalog
        if cached is None or cached[0] != version:
            cached = await self.meta.all_repositories()
            self._catalog = cached if len(cached[1]) <= CACHED_NAMES else None
        return paginate(cached[1], n, last)


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
