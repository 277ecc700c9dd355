"""Fixtures of the pull-through cache tests: a real upstream (CNCF Distribution) behind a proxy
that counts every request reaching it, and Dockyard caches of it.

Starting Dockyard takes seconds, so the tests that leave the upstream and the cache as they
found them share one pair (`shared`): upstream `up` as prefix and as mirror, default TTL, no
accounts. Tests that stop the upstream, make it fail, or need other settings start their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.proxy.helpers import Shared, Upstream, proxies_env, upstream
from tests.support.server import RunningRegistry, free_port


@pytest.fixture
def up(tmp_path: Path) -> Iterator[Upstream]:
    """An anonymous Distribution of this test's own; point Dockyard at `up.url`."""
    with upstream(tmp_path / "upstream") as running:
        yield running


@pytest.fixture(scope="session")
def _shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("proxy-shared")
    with upstream(root / "upstream") as running:
        cache = RunningRegistry(
            data_dir=root / "data",
            port=free_port(),
            log_dir=root,
            env=proxies_env({"name": "up", "url": running.url, "mirror": True}),
        ).start()
        try:
            yield Shared(running, cache)
        finally:
            cache.stop()


@pytest.fixture
def shared(_shared: Shared) -> Shared:
    """The shared upstream and cache, with the request log cleared and no shaping rules."""
    proxy = _shared.up.proxy
    proxy.throttle = proxy.cut = None
    proxy.rate = None
    proxy.reset()
    return _shared
