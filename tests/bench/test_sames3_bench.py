"""`python -m bench.scaleout --distribution` (bench.sames3) at a tiny size: Dockyard on S3
(SeaweedFS) + PostgreSQL and both CNCF Distributions with their `s3` driver on the same
SeaweedFS, every benchmark in every round on all three.

Timings are never asserted: only that each figure is there for every server, that the
redirected pulls really came from the S3 server and the streamed ones from the registry's twin,
that the listings found what was pushed (the benchmark checks the counts itself and fails
otherwise), and that nothing was left running.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.sames3 import PAGE_SAMPLES

from tests.bench.runner import SIDES, finite
from tests.support.peers import require
from tests.support.seaweedfs import weed_binary

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 2
KEYS = (
    "tags_list_full_ms",
    "tags_list_page_ms",
    "catalog_full_ms",
    "catalog_paged_ms",
    "blob_push_monolithic_mibps",
    "blob_push_chunked_mibps",
    "blob_pull_redirected_mibps",
    "blob_pull_through_mibps",
)


def test_dockyard_and_both_distributions_run_every_benchmark_on_the_same_s3(
    tmp_path: Path,
) -> None:
    for tool in ("curl", "docker-registry", "registry-v3"):
        require(tool)
    weed_binary()
    out = tmp_path / "sames3.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scaleout",
            "--distribution",
            "--rounds",
            str(ROUNDS),
            "--tags",
            "11",
            "--repos",
            "12",
            "--page",
            "5",  # pages of 5: each walk follows Link twice
            "--blob-mib",
            "12",
            "--chunk-mib",
            "5",  # S3's smallest multipart part, so the chunked push has three PATCHes
            "--pull-mib",
            "3",
            "--pull-repeats",
            "1",
            "--list-iterations",
            "1",
            "--setup-workers",
            "4",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    results = json.loads(out.read_text())
    assert results["errors"] == {}
    assert sorted(results["servers"]) == sorted(SIDES)
    for key in KEYS:
        entry = results["benchmarks"][key]
        assert entry["title"] in result.stdout
        for side in SIDES:
            values = entry[side]["values"]
            assert len(values) == ROUNDS and all(finite(v) and v > 0 for v in values), (key, side)
        assert finite(entry["ratio_anchor"]), key
    assert results["benchmarks"]["tags_list_page_ms"]["target"] == "ratio <= 0.05"
    assert results["benchmarks"]["blob_pull_redirected_mibps"]["target"] == "ratio >= 1.0"

    # every Distribution was configured for the S3 server, not a folder
    for side in SIDES[1:]:
        config = results["servers"][side]["command"].split()[-1]
        assert config.endswith("config.yml"), results["servers"][side]["command"]
    endpoint = results["storage"]["s3_endpoint"]
    redirected = results["info"]["blob_pull_redirected"]["bytes_from"]
    assert redirected == dict.fromkeys(SIDES, endpoint)
    streamed = results["info"]["blob_pull_through"]["bytes_from"]
    twins = results["twins"]
    assert streamed == {side: twins[f"{side}_through"]["url"] for side in SIDES}

    # the catalog walks went page by page; the tag list's pages were sampled
    pages = results["info"]["listings"]["requests_per_paged_listing"]
    assert pages["dockyard"] == {"tags": PAGE_SAMPLES, "catalog": 3}
    assert pages["distribution_v3"]["catalog"] == 3
    for entry in [*results["servers"].values(), *twins.values()]:
        assert not Path(f"/proc/{entry['pid']}").exists(), "a server was left running"
