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
"""

from __future__ import annotations

import os
import signal
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
