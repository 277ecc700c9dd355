"""The data folder is readable by its owner only: it holds the account database, the token
signing key and every pushed blob, private repositories' included."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

# What every file and folder this process creates from now on leaves out: group and other.
PRIVATE_UMASK = 0o077
OTHERS = 0o077


def keep_private(folder: Path) -> None:
    """Create `folder` (0700) or tighten it. What is created in it is private by the umask the
    command set (`private_umask`), which is process-wide and so left to the entry points.

    A folder left open by an older version is tightened with everything in it, once: the next
    start finds it private and walks nothing, however many blobs it holds. The entries directly
    in it (the databases, the counters, the key folder) are checked at every start, which costs
    a few system calls."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & OTHERS:
        _tighten_tree(folder)
        folder.chmod(mode & ~OTHERS)
        return
    with os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                _tighten(entry.path, entry.stat(follow_symlinks=False).st_mode)


def private_umask() -> None:
    """From now on this process creates files and folders for its owner only."""
    os.umask(PRIVATE_UMASK)


def _tighten_tree(folder: Path) -> None:
    for root, dirs, files in os.walk(folder):
        for name in (*dirs, *files):
            path = os.path.join(root, name)
            # Gone meanwhile: an upload finished, a blob was deleted by another process.
            with contextlib.suppress(FileNotFoundError):
                _tighten(path, os.lstat(path).st_mode)


def _tighten(path: str, mode: int) -> None:
    if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & OTHERS:
        os.chmod(path, stat.S_IMODE(mode) & ~OTHERS)
