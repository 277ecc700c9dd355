"""What `dockyard serve` imports once, before forking its workers, so that no worker imports it
in the middle of its first requests."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

PROBE = textwrap.dedent("""
    import json, sys
    from dockyard.cli.serve import load_for_workers
    from dockyard.config import Settings, Upstream
    proxies = [Upstream(name="up", url="http://127.0.0.1:9")] if sys.argv[2] == "cache" else []
    load_for_workers(Settings(data_dir=sys.argv[1], proxies=proxies))
    print(json.dumps(sorted(sys.modules)))
""")

BACKEND = "anyio._backends._asyncio"


def _loaded(tmp_path: Path, kind: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "data"), kind],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    modules: list[str] = json.loads(result.stdout)
    return modules


def test_a_pull_through_cache_loads_the_upstream_clients_backend_before_the_workers(
    tmp_path: Path,
) -> None:
    assert BACKEND in _loaded(tmp_path, "cache")


def test_a_registry_without_upstreams_does_not_pay_for_it_at_start(tmp_path: Path) -> None:
    assert BACKEND not in _loaded(tmp_path, "plain")
