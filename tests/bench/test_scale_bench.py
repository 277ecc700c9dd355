"""`python -m bench --scale` at a tiny size: Dockyard on filesystem + SQLite and on S3
(SeaweedFS) + PostgreSQL filled through its metadata store, both Distributions by HTTP
pushes, every growth figure at every size of every server, the table and (with matplotlib,
the `bench` extra) the plot.

Timings are never asserted: only that each figure is there, the flatness judged, and the fill
went through the store (Dockyard lists exactly the tags and repositories the store was given).
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import httpx
import pytest
from bench.growth import FIGURES, seed_server
from bench.servers import Dockyard

from bench import fill
from tests.bench.runner import run_bench

TAGS, REPOS = [30, 250], [12, 60]
AFTER_PUTS = ("manifest_put_new_tag_ms", "tags_page_after_push_ms")  # one a PUT
DIST_TAGS, DIST_REPOS = [20, 40], [10, 20]
TINY = [
    "--scale",
    "--tags",
    ",".join(map(str, TAGS)),
    "--repos",
    ",".join(map(str, REPOS)),
    "--pg-tags",
    ",".join(map(str, TAGS)),
    "--pg-repos",
    ",".join(map(str, REPOS)),
    "--distribution-tags",
    ",".join(map(str, DIST_TAGS)),
    "--distribution-repos",
    ",".join(map(str, DIST_REPOS)),
    "--requests",
    "3",
    "--puts",
    "2",
    "--batch",
    "100",
    "--concurrency",
    "8",
    "--setup-workers",
    "4",
]


def test_every_growth_figure_is_measured_at_every_size_on_every_server(tmp_path: Path) -> None:
    plot = tmp_path / "scale.png"
    results, printed = run_bench(
        tmp_path,
        [*TINY, "--plot", str(plot)],
        ("docker-registry", "registry-v3"),
        timeout=240,
    )
    dockyards = ["dockyard", "dockyard_s3_postgresql"]
    assert sorted(results["servers"]) == ["distribution", "distribution_v3", *dockyards]
    assert results["backends"] == {
        "dockyard": "filesystem+sqlite",
        "dockyard_s3_postgresql": "s3+postgresql",
        "distribution_v3": "filesystem",
        "distribution": "filesystem",
    }
    assert sorted(results["figures"]) == sorted(f.key for f in FIGURES)
    for figure in FIGURES:
        entry = results["figures"][figure.key]
        assert entry["axis"] == figure.axis
        for key, per_server in entry["servers"].items():
            if key in dockyards:
                sizes = TAGS if figure.axis == "tags" else REPOS
            else:
                sizes = DIST_TAGS if figure.axis == "tags" else DIST_REPOS
            assert sorted(int(s) for s in per_server["by_size"]) == sizes, (figure.key, key)
            count = 2 if figure.key in AFTER_PUTS else 3
            for size, timing in per_server["by_size"].items():
                assert math.isfinite(timing["median_ms"]) and timing["median_ms"] > 0, size
                assert timing["p99_ms"] >= timing["median_ms"], size
                assert timing["count"] == count, size
                # the server tree's own CPU, read per thread around the timed requests
                assert math.isfinite(timing["cpu_us"]) and timing["cpu_us"] > 0, size
                if figure.axis == "tags" or key in dockyards:
                    # the reference repository (or, for a catalog, server) at the smallest
                    # size, timed in the same turns
                    reference = timing["reference"]
                    assert reference["count"] == count, size
                    assert reference["cpu_us"] > 0, size
                    assert timing["over_reference"] == pytest.approx(
                        timing["median_ms"] / reference["median_ms"]
                    )
                else:
                    assert "reference" not in timing
            growth = per_server["largest_over_smallest"]
            assert math.isfinite(growth) and growth > 0, (figure.key, key)
            assert per_server["cpu_largest_over_smallest"] > 0, (figure.key, key)
            over_reference = per_server["largest_over_reference"]
            if figure.axis == "tags" or key in dockyards:
                assert math.isfinite(over_reference) and over_reference > 0, (figure.key, key)
                # judged on the pair timed together, not on sizes timed minutes apart
                assert per_server["flat"] is (over_reference <= 1.5), (figure.key, key)
            else:
                assert over_reference is None
                assert per_server["flat"] is (growth <= 1.5), (figure.key, key)
        assert figure.title in printed
    assert "largest/smallest" in printed and "largest/reference" in printed
    for key in dockyards:
        fills = results["fill_seconds"][key]
        assert sorted(fills) == sorted(
            [f"tags_{n}" for n in TAGS]
            + [f"repositories_{n}" for n in REPOS]
            + [f"repositories_{n}_writes_made_again" for n in REPOS]
        )
    assert sorted(results["references"]) == [f"{key}_reference" for key in dockyards]
    for server in [*results["servers"].values(), *results["references"].values()]:
        assert server["pid"], server
        assert not Path(f"/proc/{server['pid']}").exists(), "a server was left running"
    if results["plot"]["path"]:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "matplotlib" in results["plot"]["note"] and not plot.exists()


def test_a_filled_store_serves_what_it_was_given(tmp_path: Path) -> None:
    """The store's fill is what a client then sees: every tag on the seed's manifest and every
    repository in the catalog, in order, pullable."""

    server = Dockyard("dockyard", "Dockyard", tmp_path / "dockyard")
    server.start()
    try:
        seed, manifest = seed_server(server)
        meta = fill.open_sqlite(server.workdir / "data")

        async def grow() -> None:
            try:
                await fill.add_tags(meta, seed, 1, 57, batch=10)
                await fill.add_repositories(meta, seed, 1, 23, concurrency=5)
            finally:
                await meta.close()

        asyncio.run(grow())
        with httpx.Client(base_url=server.url) as http:
            tags = http.get(f"/v2/{fill.TAG_REPOSITORY}/tags/list").json()["tags"]
            assert tags == [fill.tag_name(i) for i in range(57)]
            repos = http.get("/v2/_catalog", params={"n": "1000"}).json()["repositories"]
            assert repos == sorted(
                [fill.TAG_REPOSITORY] + [fill.repository_name(i) for i in range(1, 23)]
            )
            got = http.get(
                f"/v2/{fill.repository_name(22)}/manifests/latest",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
            )
            assert got.status_code == 200 and got.content == manifest
            layer = http.get(f"/v2/{fill.repository_name(7)}/blobs/{seed.layer_digest}")
            assert layer.status_code == 200 and len(layer.content) == seed.layer_size
    finally:
        server.stop()
