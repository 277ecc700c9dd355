"""The workers' metrics folder lives in memory and the data folder links to it: what an earlier
server left is removed, and nothing the link does not own is followed."""

from __future__ import annotations

import os
from pathlib import Path

from dockyard.cli.metrics_serving import _forget, _memory_dir


def test_the_folder_is_made_in_memory_when_there_is_such_a_file_system() -> None:
    if os.path.isdir("/dev/shm"):
        assert _memory_dir() == "/dev/shm"


def test_a_killed_servers_link_and_folder_are_removed(tmp_path: Path) -> None:
    memory = tmp_path / "shm" / "dockyard-metrics-abc"
    memory.mkdir(parents=True)
    (memory / "counter_1.db").write_bytes(b"x")
    link = tmp_path / "data" / "metrics" / "host-5000"
    link.parent.mkdir(parents=True)
    link.symlink_to(memory)
    _forget(link)
    assert not link.is_symlink() and not memory.exists()


def test_a_link_to_anything_else_is_removed_without_touching_its_target(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_bytes(b"x")
    link = tmp_path / "host-5000"
    link.symlink_to(precious)
    _forget(link)
    assert not link.is_symlink() and (precious / "keep").exists()


def test_a_folder_kept_by_an_older_server_is_removed(tmp_path: Path) -> None:
    old = tmp_path / "host-5000"
    old.mkdir()
    (old / "counter_1.db").write_bytes(b"x")
    _forget(old)
    assert not old.exists()
