"""Fixtures for the local image formats: skopeo in a private containers environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.peers import ContainersEnv, containers_env, require


@pytest.fixture
def ce(tmp_path: Path) -> Iterator[ContainersEnv]:
    """skopeo with its own policy and storage; fails under CI when skopeo is missing."""
    require("skopeo")
    with containers_env(tmp_path / "containers") as env:
        yield env
