"""Pulls counted between two writes of the outbox, one event per puller and manifest.

A registry answering thousands of manifest GETs a second cannot write an event row for each:
the pull events of one window are counted per key — repository, manifest, tag, and who pulled
(account, client address without its port, Host, User-Agent) — and each key becomes one event
carrying `count`, the number of pulls it stands for, with the first pull's time and request.
Noting a pull is a dictionary update; the event's fields are built once per key.

The tally is bounded: while the metadata store cannot take a batch, it is kept and merged
with what follows, and a pull under a key the full tally has no room for is dropped and
counted (`dropped`); counts of keys already held are never lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dockyard.core.event_origin import EventOrigin

# (repository, digest, media type, size, tag, actor, client address, host, user agent)
PullKey = tuple[str, str, str, int, str | None, str, str, str, str]
# What the outbox takes: (repository, action, fields)
OutboxItem = tuple[str, str, dict[str, Any]]


class PullTally:
    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self._counts: dict[PullKey, int] = {}
        self._fields: dict[PullKey, dict[str, Any]] = {}
        self.dropped = 0  # pulls given up for want of room, since this process started

    def __len__(self) -> int:
        return len(self._counts)

    def add(self, key: PullKey, origin: Callable[[], EventOrigin | None]) -> bool:
        """Count one pull; `origin` is asked only for a key not yet held. False when the
        pull was dropped (the tally is full)."""
        counts = self._counts
        held = counts.get(key)
        if held is not None:
            counts[key] = held + 1
            return True
        if len(counts) >= self.max_keys:
            self.dropped += 1
            return False
        counts[key] = 1
        _, digest, media_type, size, tag, *_ = key
        fields: dict[str, Any] = {"digest": digest, "mediaType": media_type, "size": size}
        if tag is not None:
            fields["tag"] = tag
        first = origin()
        if first is not None:
            fields["origin"] = first.as_json()
        fields["timestamp"] = time.time()
        self._fields[key] = fields
        return True

    def take(self) -> list[tuple[PullKey, int, dict[str, Any]]]:
        """Everything counted so far, leaving the tally empty."""
        counts, fields = self._counts, self._fields
        self._counts, self._fields = {}, {}
        return [(key, count, fields[key]) for key, count in counts.items()]

    def give_back(self, taken: list[tuple[PullKey, int, dict[str, Any]]]) -> int:
        """Put back a batch that could not be written, merged with what was counted since
        (the older first pull keeps its place); how many pulls found no room and were dropped."""
        dropped = 0
        for key, count, fields in taken:
            held = self._counts.get(key)
            if held is not None:
                self._counts[key] = held + count
                self._fields[key] = fields
            elif len(self._counts) < self.max_keys:
                self._counts[key] = count
                self._fields[key] = fields
            else:
                dropped += count
        self.dropped += dropped
        return dropped


def outbox_items(taken: list[tuple[PullKey, int, dict[str, Any]]]) -> list[OutboxItem]:
    """One `pull` event per key, carrying its count."""
    return [(key[0], "pull", fields | {"count": count}) for key, count, fields in taken]
