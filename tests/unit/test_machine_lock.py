"""The machine lock that gives `alone` tests the machine under pytest-xdist: an exclusive holder
waits for the shared holders to finish, and once it waits no new shared holder gets in before it.
Threads stand for the xdist workers: each opens the lock files itself, as each worker process
does, and flock treats separate opens as separate holders."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.support.machine_lock import machine_share

WAIT = 10.0


def hold(folder: Path, alone: bool, entered: threading.Event, release: threading.Event) -> None:
    with machine_share(folder, alone=alone):
        entered.set()
        assert release.wait(WAIT)


def start(folder: Path, alone: bool) -> tuple[threading.Thread, threading.Event, threading.Event]:
    entered, release = threading.Event(), threading.Event()
    thread = threading.Thread(target=hold, args=(folder, alone, entered, release), daemon=True)
    thread.start()
    return thread, entered, release


def test_shared_holders_run_together(tmp_path: Path) -> None:
    first, first_in, first_done = start(tmp_path, alone=False)
    second, second_in, second_done = start(tmp_path, alone=False)
    assert first_in.wait(WAIT) and second_in.wait(WAIT)
    first_done.set()
    second_done.set()
    first.join(WAIT)
    second.join(WAIT)


def test_an_alone_test_waits_for_running_tests_and_goes_before_later_ones(tmp_path: Path) -> None:
    running, running_in, running_done = start(tmp_path, alone=False)
    assert running_in.wait(WAIT)
    alone, alone_in, alone_done = start(tmp_path, alone=True)
    assert not alone_in.wait(0.5)  # a test is still running elsewhere
    later, later_in, later_done = start(tmp_path, alone=False)
    assert not later_in.wait(0.5)  # the alone test is waiting: it goes first
    running_done.set()
    assert alone_in.wait(WAIT)
    assert not later_in.wait(0.5)  # nothing runs beside the alone test
    alone_done.set()
    assert later_in.wait(WAIT)
    later_done.set()
    for thread in (running, alone, later):
        thread.join(WAIT)
        assert not thread.is_alive()


def test_two_alone_tests_never_overlap(tmp_path: Path) -> None:
    first, first_in, first_done = start(tmp_path, alone=True)
    assert first_in.wait(WAIT)
    second, second_in, second_done = start(tmp_path, alone=True)
    assert not second_in.wait(0.5)
    first_done.set()
    assert second_in.wait(WAIT)
    second_done.set()
    for thread in (first, second):
        thread.join(WAIT)
        assert not thread.is_alive()
