"""Tag lists and the catalog, paged by `n` and `last` as the spec describes."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.base import MetadataStore

# The most entries one page carries; larger `n` is clamped and a Link points on.
MAX_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class Page:
    items: list[str]
    next_last: str | None  # set when more entries follow
    limit: int


def parse_page_size(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise RegistryError(
            ErrorCode.UNSUPPORTED,
            "n must be a non-negative integer",
            status=400,
            detail={"n": raw[:50]},
        )
    return int(raw)


def paginate(names: list[str], n: int | None, last: str | None) -> Page:
    """One page of an already sorted list, as the store would have given it."""
    if n == 0:
        return Page([], None, 0)
    limit = min(n if n is not None else MAX_PAGE, MAX_PAGE)
    after = [name for name in names if last is None or name > last]
    if len(after) > limit:
        return Page(after[:limit], after[limit - 1], limit)
    return Page(after, None, limit)


class ListingService:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    async def tags(self, repository: str, n: int | None, last: str | None) -> Page:
        if not await self.meta.repository_exists(repository):
            raise RegistryError(ErrorCode.NAME_UNKNOWN, detail={"name": repository})
        return await self._page(lambda lim, lst: self.meta.list_tags(repository, lim, lst), n, last)

    async def catalog(self, n: int | None, last: str | None) -> Page:
        return await self._page(self.meta.list_repositories, n, last)

    @staticmethod
    async def _page(fetch, n: int | None, last: str | None) -> Page:  # type: ignore[no-untyped-def]
        if n == 0:
            return Page([], None, 0)
        limit = min(n if n is not None else MAX_PAGE, MAX_PAGE)
        items = await fetch(limit + 1, last)
        if len(items) > limit:
            items = items[:limit]
            return Page(items, items[-1], limit)
        return Page(items, None, limit)
