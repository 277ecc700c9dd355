"""Online garbage collection: what nothing references any more goes, while the registry serves.

One round reviews the queue (`metadata/collection.py`) in small batches. Each batch holds the
content lock exclusively (`sweeping`) from the transaction that decides and deletes the records
to the removal of the bytes: a push publishes under the same lock (shared), so it either
committed its references before the decision, which then keeps the blob, or starts after the
bytes are gone and is answered MANIFEST_BLOB_UNKNOWN. Records always go before bytes, and a digest
leaves the queue only once its bytes are gone: a process killed between the two leaves the
queue row, and whichever collector reviews it next finds no record and removes the bytes.
`dockyard gc` also lists the store for bytes without a record of any other origin.

Batches are sized by time: each may hold the lock about LOCK_BUDGET, so a push waits no longer
than that, however fast or slow the stores are. Between full rounds the serving collector
sleeps until queued content is due and no more has become due for a moment (`until_due`),
then reviews the queue alone.

Untagged manifests go only where the settings say so; abandoned uploads expire in the same job.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from dockyard.core.file_lock import POLL_MAX
from dockyard.metadata.base import MetadataStore
from dockyard.service.activity import Activity
from dockyard.service.content_lock import ContentLock, NoLock
from dockyard.service.uploads import UploadService
from dockyard.storage.base import BlobStore

log = logging.getLogger("dockyard.gc")

# A collector holds the content lock for a turn of about LOCK_BUDGET seconds, so a push waits
# a moment at most: several batches, each decided while the bytes of the one before are
# removed (the two use different resources: the database's writer, the file system). The
# first batch of a round holds BATCH digests; the next ones grow or shrink so that a step of
# the pipeline takes about STEP_BUDGET, and a collection with nobody waiting pays for fewer
# transactions (figures in bench/README.md).
BATCH = 100
MIN_BATCH = 10
MAX_BATCH = 1000
# With metadata shared by replicas (PostgreSQL): a longer deciding transaction conflicts with
# more concurrent deletions, whose serialization retries may then run out (bench/README.md).
MAX_SHARED_BATCH = 500
LOCK_BUDGET = 0.1
# Two steps a turn: each batch's fixed cost (a durable commit, its statements) is paid less
# often than with three, and a second step still overlaps the first batch's removal.
STEP_BUDGET = LOCK_BUDGET / 2
# How often a collector whose grace delay is shorter than its interval looks for rows queued
# since its last review (by any process).
POLL_SECONDS = 0.05
# Between full rounds, due content is reviewed once no more has become due for this long: a
# burst of deletions is reclaimed right after it ends. While changes keep coming (every
# upload queues its layer), the full rounds' interval paces the collector as before: at grace
# 0, reviews back to back would take most layers before their manifest came.
QUIET_SECONDS = 0.1
# A serving collector (`paced`) rests this many times as long as each batch took before the
# next: its worker keeps about half of its time for requests, and manifest GETs while it
# collects stay near their idle rate (the benchmark's gc row); `dockyard gc` does not rest,
# nor does a serving collector whose worker was asked nothing during the batch (`activity`).
SERVING_REST = 1.0
# A collector that needs no rest still lets go of the content lock this long between batches
# when someone waits for it (`ContentLock.contended`): a push waiting for the lock looks at it
# every POLL_MAX at most, and without the gap would find it taken again at every look.
TURN_SECONDS = 2 * POLL_MAX


def next_batch(
    size: int, held: float, budget: float = LOCK_BUDGET, largest: int = MAX_BATCH
) -> int:
    """The size of the batch after one of `size` digests that took `held` seconds: scaled to
    the budget, at most doubled at a time, at most `largest`."""
    if held <= 0:
        return min(largest, size * 2)
    scaled = int(size * budget / held)
    return max(MIN_BATCH, min(largest, size * 2, scaled))


@dataclass(slots=True)
class _Position:
    """Where a pass over the queue stands: the last digest reviewed, the next batch's size, and
    the digests whose bytes are gone but whose rows are still queued."""

    after: str = ""
    size: int = BATCH
    gone: list[str] = field(default_factory=list)


@dataclass(slots=True)
class GcReport:
    """What one round reclaimed, or would reclaim (`dry_run`)."""

    dry_run: bool
    grace_seconds: float
    blobs: int = 0
    bytes: int = 0
    links: int = 0
    manifests: int = 0
    uploads: int = 0
    strays: int = 0  # bytes without a record (a collector killed mid-batch)
    digests: list[str] = field(default_factory=list)
    untagged: list[str] = field(default_factory=list)  # repository@digest

    def as_json(self) -> dict[str, object]:
        return asdict(self)


class GarbageCollector:
    def __init__(
        self,
        blob_store: BlobStore,
        meta: MetadataStore,
        lock: ContentLock,
        uploads: UploadService,
        *,
        grace_seconds: float,
        untagged: bool,
        keep_prefixes: list[str],
    ) -> None:
        self.blob_store = blob_store
        self.meta = meta
        self.lock = lock
        self.uploads = uploads
        self.grace_seconds = grace_seconds
        self.untagged = untagged
        self.keep = keep_prefixes
        # The cutoff of the last review: rows queued after it were not looked at yet.
        self.reviewed_until = 0.0
        # Told of every round's report (the server's metrics).
        self.on_round: Callable[[GcReport], None] | None = None
        # This process's requests (the serving application's): a paced batch is followed by a
        # rest only if some were served meanwhile. None: always rest.
        self.activity: Activity | None = None
        # Rests taken after paced batches, and paced batches that needed none.
        self.rests = 0
        self.unrested = 0
        # Gaps left between unrested batches for a publisher waiting for the lock.
        self.turns = 0
        # Set by `stop`: no batch starts after it. `_quiet` is set while no batch runs.
        self._stopping = False
        self._quiet = asyncio.Event()
        self._quiet.set()

    @property
    def in_batch(self) -> bool:
        """A batch is under way: records decided, bytes not all removed yet."""
        return not self._quiet.is_set()

    async def stop(self, timeout: float) -> bool:
        """Start no batch after this one, and wait up to `timeout` seconds for the batch in
        progress to finish, records and bytes: a stopping server then leaves every queued
        digest either collected or untouched. False when the batch was still running."""
        self._stopping = True
        try:
            await asyncio.wait_for(self._quiet.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def collect(
        self,
        *,
        dry_run: bool = False,
        grace_seconds: float | None = None,
        strays: bool = False,
        paced: bool = False,
    ) -> GcReport:
        """One round: expired uploads, untagged manifests (if enabled), then the queue.
        `strays` also lists the blob store for bytes without a record (a full listing);
        `paced` rests between batches (SERVING_REST), as the serving collector does."""
        grace = self.grace_seconds if grace_seconds is None else grace_seconds
        report = GcReport(dry_run=dry_run, grace_seconds=grace)
        cutoff = time.time() - grace
        if not dry_run:
            report.uploads = await self.uploads.purge_expired()
        if self.untagged:
            await self._untagged(report, cutoff, dry_run)
        await self._queue(report, cutoff, dry_run, paced)
        if strays:
            await self._strays(report, dry_run)
        if not dry_run and (report.blobs or report.links or report.manifests or report.strays):
            log.info(
                "gc: %d blob(s), %d bytes, %d link(s), %d manifest(s), %d stray(s) reclaimed",
                report.blobs,
                report.bytes,
                report.links,
                report.manifests,
                report.strays,
            )
        if self.on_round is not None:
            self.on_round(report)
        return report

    async def review(self) -> GcReport:
        """The queue alone (no uploads, no untagged manifests), paced: what the serving
        collector does when rows become due between its full rounds."""
        report = GcReport(dry_run=False, grace_seconds=self.grace_seconds)
        await self._queue(report, time.time() - self.grace_seconds, False, paced=True)
        if report.blobs or report.links:
            log.info(
                "gc: %d blob(s), %d bytes, %d link(s) reclaimed",
                report.blobs,
                report.bytes,
                report.links,
            )
        if self.on_round is not None:
            self.on_round(report)
        return report

    async def until_due(self, deadline: float) -> bool:
        """Sleep until content queued since the last review is due and none has become due
        for QUIET_SECONDS (True), or until `deadline` (time.time(); False). Rows queued later
        than the grace delay before the deadline cannot be due by then, so a collector with a
        long grace delay looks only when the earliest row it knows of is due."""
        while True:
            now = time.time()
            if now >= deadline:
                return False
            cutoff = now - self.grace_seconds
            queued = await self.meta.queued_since(self.reviewed_until, cutoff)
            wake = deadline
            if queued is not None:
                earliest, latest_due = queued
                if earliest <= cutoff:  # something is due
                    # Compared as the same sum it sleeps until: a difference of the two times
                    # may round below QUIET_SECONDS even then, and the look would repeat at once.
                    ready = latest_due + self.grace_seconds + QUIET_SECONDS
                    if now >= ready:
                        return True
                    wake = min(wake, ready)
                else:
                    wake = min(wake, earliest + self.grace_seconds + QUIET_SECONDS)
            if self.grace_seconds < deadline - now:
                wake = min(wake, now + POLL_SECONDS)
            await asyncio.sleep(max(0.0, wake - now))

    async def _untagged(self, report: GcReport, cutoff: float, dry_run: bool) -> None:
        after = ("", "")
        while not self._stopping and (
            due := await self.meta.untagged_due(cutoff, self.keep, BATCH, after)
        ):
            after = due[-1]
            async with self._lock(dry_run).sweeping():
                gone = await self.meta.collect_untagged(due, cutoff, self.keep, dry_run=dry_run)
            report.manifests += len(gone)
            report.untagged.extend(f"{repository}@{digest}" for repository, digest, _ in gone)

    async def _queue(
        self, report: GcReport, cutoff: float, dry_run: bool, paced: bool = False
    ) -> None:
        # One pass over the queue in digest order: what is skipped (another collector's,
        # or left by a dry run) waits for the next round.
        after = ""
        size = BATCH
        if dry_run:
            while not self._stopping and (
                due := await self.meta.due_for_review(cutoff, size, after)
            ):
                after = due[-1]
                collected = await self.meta.collect_blobs(due, cutoff, self.keep, dry_run=True)
                for digest, blob_size in collected.blobs:
                    await self._reclaim(report, digest, blob_size)
                report.links += collected.links
            return
        # A look without the lock first: a round with nothing due keeps no push waiting.
        if not await self.meta.due_for_review(cutoff, 1, after):
            self._reviewed_until(cutoff)
            return
        # Serving collectors take turns for a whole pass (`collecting`): the rests that pace
        # one pace the registry's collection, however many workers and replicas collect.
        async with self.lock.collecting() if paced else NoLock().collecting():
            await self._batches(report, cutoff, paced)
        self._reviewed_until(cutoff)

    def _reviewed_until(self, cutoff: float) -> None:
        if not self._stopping:
            # A stop mid-round leaves the rest of this round's rows for the next start.
            self.reviewed_until = max(self.reviewed_until, cutoff)

    async def _batches(self, report: GcReport, cutoff: float, paced: bool) -> None:
        at = _Position()
        try:
            while not self._stopping:
                mark = self.activity.mark() if self.activity is not None else 0
                self._quiet.clear()
                try:
                    async with self.lock.sweeping():
                        held, reviewed, more = await self._turn(report, cutoff, at)
                finally:
                    self._quiet.set()
                log.debug("gc turn: %d reviewed, %.3f s held", reviewed, held)
                if not more:
                    break
                if paced:
                    await self._rest(held, mark)
        finally:
            if at.gone:
                await self.meta.reviewed(at.gone, cutoff)

    async def _turn(
        self, report: GcReport, cutoff: float, at: _Position
    ) -> tuple[float, int, bool]:
        """Batches under one hold of the content lock, for about LOCK_BUDGET: each batch's
        records are decided (and committed) while the bytes of the batch before are removed.
        Records always go before their bytes, and every removal has finished when this
        returns: the lock is never let go while bytes of dropped records remain, so a push of
        the same content publishes only after the old bytes are gone.

        Returns how long the lock was held, how many digests were reviewed, and whether the
        queue may hold more."""
        started = time.monotonic()
        removing: asyncio.Task[dict[str, int]] | None = None
        removing_blobs: list[tuple[str, int | None]] = []
        reviewed = 0
        more = True
        try:
            while True:
                step = time.monotonic()
                # Picked under the lock: a collector that held it meanwhile (another worker's
                # at its turn, or `dockyard gc`) took its rows off the queue, so the two never
                # review the same digests.
                due, collected = await self.meta.collect_next(
                    cutoff, at.size, at.after, self.keep, at.gone
                )
                at.gone = []
                if removing is not None:
                    done, removing = removing, None
                    at.gone = self._count_removed(report, removing_blobs, await done)
                if not due:
                    more = False
                    break
                at.after = due[-1]
                reviewed += len(due)
                report.links += collected.links
                removing_blobs = collected.blobs
                # Awaited in this turn, at the next step or on the way out (`finally`).
                removing = asyncio.create_task(  # noqa: RUF006 - held in `removing`
                    self.blob_store.remove_many([d for d, _ in removing_blobs])
                )
                now = time.monotonic()
                largest = MAX_SHARED_BATCH if self.meta.shared else MAX_BATCH
                at.size = next_batch(len(due), now - step, STEP_BUDGET, largest)
                # Another step would take about as long as this one did.
                if self._stopping or (now - started) + (now - step) > LOCK_BUDGET:
                    break
        finally:
            if removing is not None:
                at.gone += self._count_removed(report, removing_blobs, await removing)
        return time.monotonic() - started, reviewed, more

    def _count_removed(
        self, report: GcReport, blobs: list[tuple[str, int | None]], removed: dict[str, int]
    ) -> list[str]:
        """Counts what a removal removed; the digests of `blobs`, whose bytes are now gone."""
        for digest, blob_size in blobs:
            if digest in removed:
                self._removed(report, digest, blob_size, removed[digest])
        return [digest for digest, _ in blobs]

    async def _rest(self, held: float, mark: int) -> None:
        """After a paced batch: make room for the requests this process serves, if it served
        any since `mark`; with none, only for whoever waits for the lock (TURN_SECONDS), if
        anyone does."""
        if self.activity is not None and self.activity.idle_since(mark):
            self.unrested += 1
            if await self.lock.contended():
                self.turns += 1
                await asyncio.sleep(TURN_SECONDS)
            return
        self.rests += 1
        await asyncio.sleep(held * SERVING_REST)

    async def _reclaim(self, report: GcReport, digest: str, size: int | None) -> None:
        """What a dry run would reclaim: the bytes of a blob whose record would go, counted
        only if they are there."""
        stored = await self.blob_store.stat(digest)
        if stored is not None:
            self._removed(report, digest, size, stored)

    def _removed(self, report: GcReport, digest: str, size: int | None, stored: int) -> None:
        """Counts bytes removed (or that would be); a blob without a record (`size` None: a
        collector killed before removing its bytes) is a stray."""
        if size is None:
            report.strays += 1
        self._count(report, digest, stored if size is None else size)

    async def _strays(self, report: GcReport, dry_run: bool) -> None:
        recorded = set(await self.meta.all_blob_digests())
        listed = [d async for d in self.blob_store.iter_digests() if d not in recorded]
        if not listed:
            return
        async with self._lock(dry_run).sweeping():
            # Read again under the lock: what was published since has its record now.
            recorded = set(await self.meta.all_blob_digests())
            for digest in listed:
                if digest in recorded:
                    continue
                size = await self.blob_store.stat(digest)
                if size is None:
                    continue
                if not dry_run:
                    await self.blob_store.delete(digest)
                report.strays += 1
                self._count(report, digest, size)

    def _lock(self, dry_run: bool) -> ContentLock:
        """A dry run changes nothing, so it keeps no push waiting."""
        return NoLock() if dry_run else self.lock

    @staticmethod
    def _count(report: GcReport, digest: str, size: int) -> None:
        report.blobs += 1
        report.bytes += size
        if len(report.digests) < 1000:
            report.digests.append(digest)
