"""A repository's description and README: the rules for writing them, and reading them back
with the README rendered.

The description is one short line (it is shown in lists); the README is Markdown of at most
1 MiB of UTF-8, which is far beyond any real one and keeps a page's rendering bounded. Text a
database cannot hold as written (NUL, a lone surrogate) is refused rather than altered.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.metadata.base import MetadataStore, RepositoryInfo
from dockyard.service.readme import render_markdown

MAX_README_BYTES = 1024 * 1024
MAX_DESCRIPTION_CHARS = 200


@dataclass(frozen=True, slots=True)
class DescribedRepository:
    name: str
    description: str
    readme: str
    readme_html: str  # sanitised: safe to put in a page as is
    updated_at: float | None


def _unknown(repository: str) -> RegistryError:
    return RegistryError(ErrorCode.NOT_FOUND, "no such repository", detail={"name": repository})


def _storable(text: str, field: str) -> None:
    if "\x00" in text:
        raise RegistryError(ErrorCode.BAD_REQUEST, f"{field} may not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise RegistryError(ErrorCode.BAD_REQUEST, f"{field} is not valid Unicode") from None


def check_description(description: str) -> str:
    description = description.strip()
    _storable(description, "description")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise RegistryError(
            ErrorCode.BAD_REQUEST,
            f"the description is at most {MAX_DESCRIPTION_CHARS} characters",
        )
    if not description.isprintable():  # line breaks, tabs, control characters
        raise RegistryError(ErrorCode.BAD_REQUEST, "the description is one line of text")
    return description


def check_readme(readme: str) -> str:
    _storable(readme, "readme")
    if len(readme.encode("utf-8")) > MAX_README_BYTES:
        raise RegistryError(
            ErrorCode.BODY_TOO_LARGE, f"the README is at most {MAX_README_BYTES} bytes of UTF-8"
        )
    return readme


class RepositoryInfoService:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta

    async def get(self, repository: str) -> DescribedRepository:
        """NOT_FOUND for a repository without content."""
        info = await self.meta.repository_info(repository)
        if info is None:
            raise _unknown(repository)
        return _described(repository, info)

    async def update(
        self, repository: str, description: str | None, readme: str | None
    ) -> DescribedRepository:
        """Replace the fields given (None leaves one as it is)."""
        if description is not None:
            description = check_description(description)
        if readme is not None:
            readme = check_readme(readme)
        info = await self.meta.set_repository_info(repository, description, readme, time.time())
        if info is None:
            raise _unknown(repository)
        return _described(repository, info)


def _described(repository: str, info: RepositoryInfo) -> DescribedRepository:
    return DescribedRepository(
        repository, info.description, info.readme, render_markdown(info.readme), info.updated_at
    )
