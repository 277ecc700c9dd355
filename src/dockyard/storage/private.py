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
    """Create `folder` (0700) or tighten it, and make whatever this process writes private.

    A folder left open by an older version is tightened with everything in it, once: the next
    start finds it private and walks nothing, however many blobs it holds. The files directly
    in it (the databases, the counters) are tightened at every start, which costs a few
    system calls."""
    os.umask(PRIVATE_UMASK)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(folder.stat().st_mode) & OTHERS:
        _tighten_tree(folder)
    else:
        with os.scandir(folder) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    _tighten(entry.path, entry.stat(follow_symlinks=False).st_mode)
    folder.chmod(0o700)


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
