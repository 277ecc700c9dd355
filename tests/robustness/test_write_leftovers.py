"""Opening the filesystem store (every admin command and `dockyard gc` does, beside a running
server) removes only what a crash left of small writes, never a write in progress."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dockyard.storage.filesystem import FilesystemBlobStore


def test_opening_the_store_keeps_a_write_in_progress_and_removes_an_old_leftover(
    tmp_path: Path,
) -> None:
    FilesystemBlobStore(tmp_path)
    in_progress = tmp_path / "uploads" / "aaaa.put"  # a manifest being written right now
    in_progress.write_bytes(b"{}")
    left_over = tmp_path / "uploads" / "bbbb.put"  # cut short by a crash a day ago
    left_over.write_bytes(b"{")
    day_ago = time.time() - 86_400
    os.utime(left_over, (day_ago, day_ago))

    FilesystemBlobStore(tmp_path)  # what `dockyard gc` or `dockyard user add` does

    assert in_progress.exists(), "a concurrent server's write must survive"
    assert not left_over.exists()
