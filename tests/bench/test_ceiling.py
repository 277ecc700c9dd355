"""The bare sink (`bench.sink`), the measuring stick of `python -m bench.ceiling`, and that runner
end to end in its quickest form.

The sink must do the work it stands for, or the limit it reports would be too high: every byte
hashed and checked against the digest, written and readable back; a wrong digest stores nothing.
Timings are never asserted.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import httpx
from bench.servers import Sink

from tests.support.peers import require

ROOT = Path(__file__).resolve().parents[2]


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_sink_stores_what_it_hashed_and_refuses_a_wrong_digest(tmp_path: Path) -> None:
    sink = Sink("sink", "sink", tmp_path).start()
    try:
        with httpx.Client(base_url=sink.url, timeout=30) as client:
            data = os.urandom(3 * 1024 * 1024 + 17)  # several receive buffers and a remainder
            location = client.post("/v2/a/b/blobs/uploads/").headers["location"]
            put = client.put(location, params={"digest": _digest(data)}, content=data)
            assert put.status_code == 201
            assert client.get(f"/v2/a/b/blobs/{_digest(data)}").content == data

            # chunked: PATCH, PATCH, then the closing PUT with no body
            location = client.post("/v2/a/b/blobs/uploads/").headers["location"]
            for piece in (data[:1000], data[1000:]):
                patch = client.patch(location, content=piece)
                assert patch.status_code == 202
                location = patch.headers["location"]
            assert patch.headers["range"] == f"0-{len(data) - 1}"
            assert client.put(location, params={"digest": _digest(data)}).status_code == 201

            location = client.post("/v2/a/b/blobs/uploads/").headers["location"]
            wrong = client.put(location, params={"digest": _digest(b"other")}, content=data[:10])
            assert wrong.status_code == 400
            assert client.get(f"/v2/a/b/blobs/{_digest(b'other')}").status_code == 404
            assert client.get(f"/v2/a/b/blobs/{_digest(data[:10])}").status_code == 404
        stored = list((tmp_path / "data" / "blobs").iterdir())
        assert [p.name for p in stored] == [_digest(data).removeprefix("sha256:")]
        assert list((tmp_path / "data" / "uploads").iterdir()) == []
    finally:
        sink.stop()


def test_the_ceiling_runner_reports_all_three_servers(tmp_path: Path) -> None:
    for tool in ("docker-registry", "curl"):
        require(tool)
    out = tmp_path / "ceiling.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.ceiling",
            "--rounds",
            "1",
            "--blob-mib",
            "2",
            "--chunk-mib",
            "1",
            "--pull-mib",
            "2",
            "--pull-repeats",
            "1",
            "--concurrent",
            "3",
            "--concurrent-mib",
            "1",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    results = json.loads(out.read_text())
    assert results["errors"] == {}
    assert sorted(results["benchmarks"]) == sorted(
        [
            "blob_push_monolithic_mibps",
            "blob_push_chunked_mibps",
            "blob_push_concurrent_mibps",
            "blob_pull_mibps",
        ]
    )
    for key, entry in results["benchmarks"].items():
        for side in ("ceiling", "dockyard", "distribution"):
            median = entry[side]["median"]
            assert isinstance(median, float) and math.isfinite(median) and median > 0, (key, side)
        for share in (
            "dockyard_of_ceiling",
            "distribution_of_ceiling",
            "ratio",
            "highest_possible_ratio",
        ):
            assert isinstance(entry[share], float), (key, share)
    assert "highest possible" in result.stdout
