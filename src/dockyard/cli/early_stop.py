"""A worker told to stop while it starts stops once it serves, instead of hanging.

Each granian worker turns SIGTERM and SIGINT into one event its HTTP server waits for. Three
ways a stop that came early was lost, each seen when a server was stopped a moment after it
was started (`systemctl stop` signals every process of the service, workers included, and
the serving process then asks each worker again), so that the serving process killed the
worker after its shutdown timeout, a request in progress cut off:

- The event holds a single stop. granian sets it on every signal, and a second `set()`
  before the server has taken the first waits for room that never comes (the server is not
  serving yet): the worker's only thread blocked for good.
- granian's handlers are the event loop's (uvloop), which hears of a signal only while the
  loop runs; the worker runs it twice (its application's start, then serving) and a signal
  between the two, or before the first, was kept by the loop where nothing looks.
- A signal before the worker had handlers met the one inherited from the serving process,
  which records it in that process's copy of the server; and one that reached a new worker
  before its interpreter was set up again after the fork was dropped (CPython forgets
  signals pending then).

So stop signals are blocked around each fork and recorded from the worker's first moment by
a handler of the interpreter's own (it runs whether or not the loop runs; when the loop
runs, the loop's wake-up on a signal runs it), and the event is set once, as soon as it
exists. The server takes the stop as soon as it serves.

The same group stop seen from the serving process: a worker with nothing in progress can be
gone before the serving process has run its own handler, and granian took that exit for a
crash ("Unexpected exit from worker-1"), then ended with status 1 when the stop came (systemd
marks the service failed). So a worker that ended by itself with success is judged after
`GROUP_STOP_WAIT`: a crash only if no stop of the server's came meanwhile (and a worker
stopped alone, by its own signal, is then respawned as a crashed one is).
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long after a worker's own clean exit the serving process's stop may still come. The
# signals of one group stop are sent together; this covers the serving process being slow to
# run its handler on a loaded machine.
GROUP_STOP_WAIT = 2.0


class _Stop:
    asked = False  # a stop signal reached this worker
    event: Any = None  # granian's event, once the worker made it
    passed_on = False  # the event was set


def keep_early_stops() -> None:
    """In the serving process, before granian forks its workers."""
    os.register_at_fork(before=_block, after_in_parent=_unblock, after_in_child=_in_worker)


def _block() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _unblock() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def _on_signal(signum: int, frame: object) -> None:
    _Stop.asked = True
    _pass_on()


def _pass_on() -> None:
    if _Stop.event is not None and not _Stop.passed_on:
        _Stop.passed_on = True
        _Stop.event.set()


def _in_worker() -> None:
    """Right after the fork, in the worker."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_signal)
    _unblock()  # a signal held since the fork is recorded now
    try:
        import granian._signals as granian_signals
    except ImportError:  # pragma: no cover - granian is a dependency
        return
    original = getattr(granian_signals, "set_loop_signals", None)
    if original is not None:  # else another granian: its own handling stands
        granian_signals.set_loop_signals = once(original)  # type: ignore[attr-defined]


def once(original: Any) -> Any:
    """granian's `set_loop_signals(loop)`, its event set at most once, by the interpreter's
    handler rather than the loop's alone."""

    def set_loop_signals(loop: Any) -> Any:
        _block()  # no signal between the loop's handlers and ours
        try:
            event = original(loop)
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, _pass_on)  # in place of granian's own
                signal.signal(sig, _on_signal)  # in place of the loop's, which only records
            _Stop.event = event
        finally:
            _unblock()
        if _Stop.asked:
            _pass_on()
        return event

    return set_loop_signals


def judge_clean_exits_after_group_stops(server: Any) -> None:
    """In the serving process: each worker `server` (granian's) starts from now on is watched
    by `_watch`; a granian shaped otherwise keeps its own watching."""
    original = getattr(server, "_spawn_worker", None)
    if original is None or not hasattr(server, "interrupt_signal"):
        return

    def spawn_worker(*args: Any, **kwargs: Any) -> Any:
        worker = original(*args, **kwargs)
        own = getattr(type(worker), "_watcher", None)
        if own is not None and hasattr(worker, "inner"):
            worker._watcher = lambda: _watch(server, worker, own)
        return worker

    server._spawn_worker = spawn_worker


def _watch(server: Any, worker: Any, own: Any) -> None:
    worker.inner.join()
    if not worker.interrupt_by_parent and worker.inner.exitcode == 0:
        deadline = time.monotonic() + GROUP_STOP_WAIT
        while not (server.interrupt_signal or worker.interrupt_by_parent):
            if time.monotonic() >= deadline:
                break  # no stop came: granian's own judgement (a crash) stands
            time.sleep(0.01)
        if server.interrupt_signal:
            worker.interrupt_by_parent = True  # part of the server's stop
    own(worker)  # granian's judgement: its join returns at once
