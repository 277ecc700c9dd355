"""The quick set (`make test-fast`, `-m unit`) holds only in-process tests: no server started,
no peer program needed. tests/conftest.py gives the markers by folder, fixture and import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def collected(marker: str) -> list[str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            # Only the markers are read: rewriting every module's asserts (redone on each run
            # where bytecode is not cached) would cost most of the collection's time.
            "--assert=plain",
            "--collect-only",
            "-m",
            marker,
            "tests",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if "::" in line]


def test_the_quick_set_starts_no_server_and_needs_no_peer() -> None:
    quick = collected("unit")
    assert quick
    assert {test.split("/")[1] for test in quick} <= {"unit", "stores"}
    for test in quick:
        assert "[s3" not in test and "postgresql" not in test, test
