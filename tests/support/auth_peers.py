"""CNCF Distribution behind Basic (htpasswd) or Bearer (token service) auth, for client tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.peers import Distribution
from tests.support.token_server import TokenServer


@contextmanager
def token_distribution(
    root: Path, users: dict[str, str], **token_options: Any
) -> Iterator[tuple[Distribution, TokenServer]]:
    """A Distribution that trusts a fresh TokenServer; both stopped on exit."""
    with (
        TokenServer(root / "token", users=dict(users), **token_options) as tokens,
        Distribution(root / "registry", config={"auth": tokens.distribution_auth()}) as reg,
    ):
        yield reg, tokens
