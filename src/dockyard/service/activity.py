"""Whether this process has been serving requests: background jobs yield to them only then.

The serving application counts the requests it starts and finishes (`api.middleware`); a job
takes a `mark` before a piece of work and asks `idle_since(mark)` after it. A process nobody
asked anything meanwhile has no request to make room for, so the job need not rest.
"""

from __future__ import annotations


class Activity:
    """Requests this process started, and how many are still in progress."""

    __slots__ = ("in_progress", "started")

    def __init__(self) -> None:
        self.started = 0
        self.in_progress = 0

    def mark(self) -> int:
        return self.started

    def idle_since(self, mark: int) -> bool:
        """No request is in progress and none started since `mark`."""
        return self.in_progress == 0 and self.started == mark
