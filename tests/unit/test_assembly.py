"""`dockyard.assembly`: a registry is made only when asked, and the server's first start makes
its key and first administrator once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from dockyard.assembly import NoRegistry, open_registry, prepare, registry_exists
from dockyard.config import Settings


async def _user_names(settings: Settings) -> list[str]:
    async with open_registry(settings) as registry:
        return [a.name for a in await registry.accounts.store.list_accounts("user")]


def test_a_missing_registry_is_refused_unless_created(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    async def refused() -> None:
        async with open_registry(settings):
            raise AssertionError("opened a registry that does not exist")

    with pytest.raises(NoRegistry):
        asyncio.run(refused())
    assert not registry_exists(settings)
    assert not (tmp_path / "data").exists()  # refusing wrote nothing

    async def made() -> None:
        async with open_registry(settings, create=True) as registry:
            await registry.accounts.create_user("zed", "zed-password")

    asyncio.run(made())
    assert registry_exists(settings)
    assert asyncio.run(_user_names(settings)) == ["zed"]


def test_prepare_makes_the_first_admin_once(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", auth=True)
    generated = asyncio.run(prepare(settings, None))
    assert generated
    assert asyncio.run(prepare(settings, None)) is None  # there is one already
    assert asyncio.run(_user_names(settings)) == ["admin"]
    assert (tmp_path / "data" / "auth").is_dir()  # the token signing key's folder


def test_prepare_without_accounts_makes_no_admin(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    assert asyncio.run(prepare(settings, "unused-password")) is None
    assert asyncio.run(_user_names(settings)) == []
