"""The serving process runs no garbage collection on its way to forking its workers.

About 130 automatic collections ran during the imports of a start, freeing nothing, on the
path to the first answer; the collector now stays off until what the workers inherit is
frozen, and is on again for them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support.server import free_port

# `dockyard serve` as its entry point runs it, up to the moment granian would fork the
# workers (the server's `serve()`), counting the collections that start before the freeze.
PROBE = textwrap.dedent("""
    import gc, json, sys

    from dockyard.cli import main as entry, serve

    before_freeze = []

    def count(phase, info):
        if phase == "start" and gc.get_freeze_count() == 0:
            before_freeze.append(info["generation"])

    class Held:
        def serve(self):
            print(json.dumps({
                "collections": before_freeze,
                "enabled": gc.isenabled(),
                "frozen": gc.get_freeze_count(),
            }), flush=True)

    serve.http_server = lambda *args, **kwargs: Held()
    sys.argv = ["dockyard", "serve", *sys.argv[1:]]
    gc.collect()  # what this probe's own imports left
    gc.callbacks.append(count)
    entry.main()
""")


def _start(tmp_path: Path, *args: str) -> dict:
    listen = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "--listen", listen, "--data-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DOCKYARD_ADMIN_PASSWORD": "probe-password-1"},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_no_collection_runs_before_the_workers_memory_is_frozen(tmp_path: Path) -> None:
    seen = _start(tmp_path / "data")
    assert seen["collections"] == []
    assert seen["frozen"] > 10_000  # the application, imported for the workers
    assert seen["enabled"] is True  # the workers collect as usual


def test_with_accounts_and_on_an_existing_folder_too(tmp_path: Path) -> None:
    _start(tmp_path / "data", "--auth")
    seen = _start(tmp_path / "data", "--auth")
    assert seen["collections"] == []
    assert seen["enabled"] is True
