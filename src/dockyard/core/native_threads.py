"""Letting native threads leave Python before the interpreter finalises.

obstore (the S3 store) completes each awaited call from a thread of its tokio runtime: the
thread takes the GIL and hands the result to the event loop with `call_soon_threadsafe`,
whose wake-up `send` lets the GIL go and then takes it back. The loop may go on, and the
process reach its end, before that thread has the GIL again. Python 3.11 ends a thread that
asks for the GIL once finalisation has begun with `pthread_exit`, whose unwinding cannot cross
the Rust frames beneath it: glibc aborts the process (SIGABRT, nothing on stderr) or it
crashes. A short-lived process that used the store waits for such threads to be done first."""

from __future__ import annotations

import sys
import threading
import time


def foreign_threads_in_python() -> set[int]:
    """Threads that Python did not start (a native library's) and that are inside Python code
    at the moment, running or waiting to take the GIL back."""
    started = {
        thread.ident
        for thread in threading.enumerate()
        if not isinstance(thread, threading._DummyThread)
    }
    return set(sys._current_frames()) - started


def settle(timeout: float = 5.0) -> bool:
    """Wait (sleeping, so without the GIL) until no foreign thread is inside Python code;
    False if one still was after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while foreign_threads_in_python():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)
    return True
