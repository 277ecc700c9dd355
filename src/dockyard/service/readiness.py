"""Whether this server can serve: its blob storage takes a write and its metadata store
answers. Asked by load balancers as often as every second, so an answer is kept for a second
(one write and one read per process per second at most, however many ask)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from dockyard.metadata.base import MetadataStore
from dockyard.storage.base import BlobStore

log = logging.getLogger("dockyard.readiness")

KEPT_SECONDS = 1.0
# Past this a check counts as failed: a hung store must not hang the balancer's probe.
CHECK_TIMEOUT_SECONDS = 5.0


class Readiness:
    def __init__(self, blob_store: BlobStore, meta: MetadataStore) -> None:
        self.blob_store = blob_store
        self.meta = meta
        self._answer: str | None = None
        self._at = float("-inf")
        self._checking: asyncio.Lock | None = None

    async def problem(self) -> str | None:
        """None when ready, else why not, in words that name no secret (no URL, no path)."""
        if time.monotonic() - self._at < KEPT_SECONDS:
            return self._answer
        if self._checking is None:
            self._checking = asyncio.Lock()
        async with self._checking:  # concurrent probes share one check
            if time.monotonic() - self._at >= KEPT_SECONDS:
                self._answer = await self._check()
                self._at = time.monotonic()
        return self._answer

    async def _check(self) -> str | None:
        try:
            await asyncio.wait_for(self._write_storage(), CHECK_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("readiness: blob storage is not writable: %r", exc)
            return "blob storage is not writable"
        try:
            reachable = await asyncio.wait_for(self.meta.has_schema(), CHECK_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("readiness: metadata store unreachable: %r", exc)
            return "metadata store is unreachable"
        if not reachable:
            return "metadata store has no schema"
        return None

    async def _write_storage(self) -> None:
        """An upload created and removed: the write every push starts with."""
        upload_id = secrets.token_hex(16)  # an upload id as the stores accept them
        await self.blob_store.create_upload(upload_id)
        await self.blob_store.abort_upload(upload_id)
