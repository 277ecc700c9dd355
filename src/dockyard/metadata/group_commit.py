"""Group commit: writes that arrive while a transaction is being committed share the next one.

Each durable SQLite commit waits for the disk, and each write was a hop to a thread and back;
with eight clients pushing small images, most of a push's time went there (perf: a quarter of
the workers' time in context switches). Writes queue here instead; one thread takes everything
queued, runs it in one transaction and commits once (should one write fail, each is run again
alone, so it fails alone). A single write waits no longer than before.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Job:
    fn: Callable[..., Any]
    durable: bool
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    outcome: tuple[bool, Any] | None = field(default=None)  # (ok, result or exception)

    def settle(self) -> None:
        assert self.outcome is not None
        ok, value = self.outcome
        self.loop.call_soon_threadsafe(_settle, self.future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class GroupCommitter:
    """`run_batch(jobs)` runs in the executor and sets every job's outcome. When it returns
    True, it has taken over telling the callers (`Job.settle`) once their outcome is durable;
    otherwise they are told as soon as it returns."""

    def __init__(self, executor: Executor, run_batch: Callable[[list[Job]], bool]) -> None:
        self.executor = executor
        self.run_batch = run_batch
        self._lock = threading.Lock()
        self._queue: list[Job] = []
        self._draining = False

    async def submit(self, fn: Callable[..., Any], durable: bool) -> Any:
        loop = asyncio.get_running_loop()
        job = Job(fn, durable, loop.create_future(), loop)
        # Retrieved even when the caller has gone away (the write still runs): no warning.
        job.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        with self._lock:
            self._queue.append(job)
            start = not self._draining
            self._draining = True
        if start:
            try:
                self.executor.submit(self._drain)
            except RuntimeError:  # the executor is shut down: the store is closing
                with self._lock:
                    self._queue.remove(job)
                    self._draining = False
                raise
        # Shielded: a caller that goes away does not take its write out of a batch under way.
        return await asyncio.shield(job.future)

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._draining = False
                    return
            try:
                if self.run_batch(batch):
                    continue
            except BaseException as exc:  # never leave a caller waiting
                for job in batch:
                    if job.outcome is None:
                        job.outcome = (False, exc)
            for job in batch:
                if job.outcome is None:
                    job.outcome = (False, RuntimeError("write was not run"))
                job.settle()
