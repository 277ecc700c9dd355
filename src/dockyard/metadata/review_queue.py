"""The garbage collector's review queue: digests whose references may have gone.

Queued in the transaction that changes a reference (a link made or dropped, a manifest
deleted), so no change escapes review; reviewed by `collection` once the grace delay is over.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.statements import prepared


def _enqueue_statement(dialect: Any) -> Any:
    return dialect.insert(t.gc_queue)


def enqueue(conn: Connection, digests: Iterable[str], now: float | None = None) -> None:
    """Queue `digests` for review (again): their review waits a grace delay from now.

    Always a new row, never an update of the digest's earlier one: concurrent pushes of a
    shared layer, and a collector removing the rows it reviewed, then never touch the same row.
    """
    stmt = prepared(conn, ("gc-enqueue",), _enqueue_statement)
    when = now or time.time()
    # On the path of every push: the direct path, one row at a time (rarely more than one).
    for digest in dict.fromkeys(digests):
        direct.execute(conn, stmt, {"digest": digest, "queued_at": when})
