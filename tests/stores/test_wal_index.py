"""SQLite's store version read from the wal-index header (`metadata.wal_index`): no statement
per read, and still moved by every commit of any connection, this process's or another's.

`tests/stores/test_remembered_lookups.py` holds the version's guarantees for every store; these
tests hold the header's own: what it costs, that another process's commit moves it, and that
whatever the header cannot tell is asked of SQLite.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dockyard.metadata import wal_index
from dockyard.metadata.sql import SQLMetadataStore
from tests.stores.test_metadata_store import D1, D2, record


def statements_of(store: SQLMetadataStore) -> list[str]:
    """Every statement the event loop's connection runs from now on."""
    seen: list[str] = []
    store.runner._local.raw.set_trace_callback(seen.append)
    return seen


def test_the_version_is_read_without_a_statement(tmp_path: Path, run) -> None:
    """A read of the version runs nothing in SQLite (`PRAGMA data_version` cost two `fcntl`
    calls and a statement on every pull answered from memory), nor does a lookup the store
    remembered while the header stands still."""
    store = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    try:
        run(store.put_manifest("mem/app", record(D1), [], ["latest"]))
        store.version()  # the first read opens the wal-index
        seen = statements_of(store)
        first = store.version()
        for _ in range(3):
            assert store.version() == first
        assert seen == []
        assert run(store.resolve_tag("mem/app", "latest")).digest == D1
        seen.clear()  # the first lookup read the tag
        for _ in range(3):
            assert run(store.resolve_tag("mem/app", "latest")).digest == D1
        assert seen == []
        run(store.link_blob("mem/app", D2, 7))
        assert run(store.resolve_tag("mem/app", "latest")).digest == D1
        assert seen[0] == "PRAGMA data_version"  # the header moved: SQLite is asked
    finally:
        run(store.close())


def test_a_commit_by_another_process_moves_the_version(tmp_path: Path, run) -> None:
    """A commit by another program on the same file (its own SQLite, another process) moves
    the version before that program has exited; nothing else does."""
    path = tmp_path / "metadata.db"
    store = SQLMetadataStore.open_sqlite(path)
    try:
        run(store.put_manifest("mem/app", record(D1), [], ["latest"]))
        store.version()
        before = store.version()
        assert isinstance(before, bytes)  # the header, not SQLite's count
        script = (
            "import sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute(\"DELETE FROM tags WHERE name = 'latest'\")\n"
            "print('committed', flush=True)\n"
            "sys.stdin.read()\n"  # still running while the version is read
        )
        other = subprocess.Popen(
            [sys.executable, "-c", script, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert other.stdout is not None and other.stdout.readline() == "committed\n"
            after = store.version()
            assert after != before
            assert store.version() == after
            assert run(store.resolve_tag("mem/app", "latest")) is None
        finally:
            other.communicate("", timeout=30)
        run(store.link_blob("mem/app", D2, 7))  # this store's own writer
        assert store.version() != after
    finally:
        run(store.close())


def test_a_header_that_cannot_be_told_asks_sqlite(
    tmp_path: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header read half-written (a commit writing it) or not yet built gives no version:
    the store asks `PRAGMA data_version` instead, whose answer is never equal to a header's,
    so nothing remembered under a header is taken for current."""
    store = SQLMetadataStore.open_sqlite(tmp_path / "metadata.db")
    try:
        run(store.put_manifest("mem/app", record(D1), [], ["latest"]))
        store.version()
        header = store.version()
        monkeypatch.setattr(wal_index.WalIndex, "header", lambda self: None)
        seen = statements_of(store)
        asked = store.version()
        assert seen == ["PRAGMA data_version"]
        assert asked != header
        assert store.version() == asked
        run(store.link_blob("mem/app", D2, 7))
        assert store.version() != asked
    finally:
        run(store.close())


def header_file(path: Path, first: bytes, second: bytes) -> Path:
    path.write_bytes(first + second + bytes(100))
    return path


def test_the_two_copies_must_agree(tmp_path: Path) -> None:
    """The header is taken only when its two copies are equal and built (`isInit`): a commit
    writes the second copy first, so a first copy read half-written differs from it."""
    built = bytearray(range(48))
    built[12] = 1
    torn = bytearray(built)
    torn[20] ^= 0xFF
    unbuilt = bytearray(built)
    unbuilt[12] = 0
    keeper = sqlite3.connect(":memory:")
    for first, second, expected in (
        (built, built, bytes(built)),
        (torn, built, None),
        (built, torn, None),
        (unbuilt, unbuilt, None),
    ):
        shm = header_file(tmp_path / "db-shm", bytes(first), bytes(second))
        descriptor = os.open(shm, os.O_RDONLY)
        try:
            index = wal_index.WalIndex(keeper, descriptor)
            assert index.header() == expected
            index._keeper = None  # the keeper is this test's
            index.close()
            assert index.header() is None  # closed: nothing to read
            os.fstat(descriptor)  # and the descriptor is still the caller's, open
        finally:
            os.close(descriptor)
    keeper.close()


def test_a_database_not_in_wal_mode_has_no_header(tmp_path: Path) -> None:
    """A `-shm` file left beside a database no longer in WAL mode is never written again: its
    header would stand still through every commit, so it is not used."""
    path = tmp_path / "metadata.db"
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("CREATE TABLE t (x)")
    built = bytearray(48)
    built[12] = 1
    header_file(Path(f"{path}-shm"), bytes(built), bytes(built))
    assert wal_index.open_wal_index(str(path)) is None
    assert wal_index.open_wal_index(":memory:") is None
    assert wal_index.open_wal_index("") is None


# SQLite's "dead man switch" on `-shm` (os_unix.c: UNIX_SHM_DMS, the byte after the eight
# wal-index locks at 120): every process with the database open holds it shared; a process
# that can hold it exclusively takes itself for the only one and truncates `-shm`.
DEAD_MAN_SWITCH = 128


def other_process_can_claim_alone(path: Path) -> bool:
    """Whether another process could take SQLite's dead man switch on `path`'s `-shm`
    exclusively: it would take itself for the database's only user and truncate it."""
    script = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        f"    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, {DEAD_MAN_SWITCH})\n"
        "except OSError:\n"
        "    print('held')\n"
        "else:\n"
        "    print('free')\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", script, f"{path}-shm"], capture_output=True, text=True, timeout=30
    )
    assert other.stdout in ("held\n", "free\n"), other.stderr
    return other.stdout == "free\n"


def test_the_process_keeps_sqlites_claim_on_the_shared_memory(tmp_path: Path, run) -> None:
    """Reading the header takes nothing from SQLite's locks. POSIX drops every lock a process
    holds on a file when it closes any descriptor of that file: the header's own descriptor,
    opened and closed beside SQLite's, dropped SQLite's shared claim on `-shm`, and the next
    program to open the database (a `dockyard gc --now` beside the server) truncated the
    shared memory under the server's workers, which died of SIGBUS together (CI: the gc race
    test's pushers saw 'Server disconnected')."""
    path = tmp_path / "metadata.db"
    store = SQLMetadataStore.open_sqlite(path)
    try:
        run(store.put_manifest("mem/app", record(D1), [], ["latest"]))
        store.version()  # opens the wal-index
        assert isinstance(store.version(), bytes)
        assert not other_process_can_claim_alone(path)
        run(store.link_blob("mem/app", D2, 7))
        assert run(store.resolve_tag("mem/app", "latest")).digest == D1
    finally:
        run(store.close())


def test_two_stores_on_one_file_and_one_closed(tmp_path: Path, run) -> None:
    """Two stores of one process on the same database, each with its header map: closing one
    leaves the other's header live and the process's claim on `-shm` in place."""
    path = tmp_path / "metadata.db"
    first = SQLMetadataStore.open_sqlite(path)
    second = SQLMetadataStore.open_sqlite(path)
    try:
        run(first.put_manifest("mem/app", record(D1), [], ["latest"]))
        first.version()
        second.version()
        before = second.version()
        assert isinstance(before, bytes)
        run(first.close())
        assert not other_process_can_claim_alone(path)
        run(second.link_blob("mem/app", D2, 7))
        after = second.version()
        assert isinstance(after, bytes) and after != before
        assert run(second.resolve_tag("mem/app", "latest")).digest == D1
    finally:
        run(second.close())
