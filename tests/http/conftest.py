"""Every test here runs on each backend pair: filesystem + SQLite and S3 + PostgreSQL."""

from __future__ import annotations

import pytest

from tests.support.server import RunningRegistry


@pytest.fixture(scope="session")
def registry(registry_on_every_backend: RunningRegistry) -> RunningRegistry:
    return registry_on_every_backend
