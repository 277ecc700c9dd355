"""Run `dockyard fsck` on a data folder the way an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_fsck(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "fsck", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        check=False,
    )
