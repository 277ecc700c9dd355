"""Fixtures for the conformance tests, which run on each backend pair (filesystem + SQLite,
S3 + PostgreSQL), and a client that lives as long as a test module."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import RunningRegistry


@pytest.fixture(scope="session")
def registry(registry_on_every_backend: RunningRegistry) -> RunningRegistry:
    return registry_on_every_backend


@pytest.fixture(scope="module")
def mclient(registry) -> Iterator[httpx.Client]:
    """Module-scoped client, for fixtures that push a module's content once."""
    with httpx.Client(base_url=registry.url, timeout=60.0) as c:
        yield c
