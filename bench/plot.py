"""The growth benchmark's plot: median time against size, both on log axes, one panel per
thing that grows (tags of one repository, repositories), one line per figure and server.

matplotlib is the `bench` extra (`pip install -e '.[bench]'`, which `make bench` installs):
without it the results say so and no picture is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

AXES = (("tags", "tags in the repository"), ("repositories", "repositories in the registry"))
STYLES = {
    "dockyard": "-",
    "dockyard_s3_postgresql": "-.",
    "distribution_v3": "--",
    "distribution": ":",
}


def write(results: dict[str, Any], path: Path) -> dict[str, Any]:
    """Draw `results` (bench.growth) into `path` (PNG); where it went, or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
    except ImportError:
        return {
            "path": None,
            "note": "no plot: matplotlib is missing (pip install -e '.[bench]')",
        }
    figure, panels = plt.subplots(1, len(AXES), figsize=(13, 5.5))
    colours = plt.get_cmap("tab10")
    for panel, (axis, label) in zip(panels, AXES, strict=True):
        shown = [e for e in results["figures"].values() if e["axis"] == axis]
        for number, entry in enumerate(shown):
            for key, per_server in entry["servers"].items():
                by_size = per_server["by_size"]
                if not by_size:
                    continue
                sizes = sorted(int(s) for s in by_size)
                panel.plot(
                    sizes,
                    [by_size[str(s)]["median_ms"] for s in sizes],
                    STYLES.get(key, "-"),
                    color=colours(number),  # one colour a figure, one line style a server
                    marker="o",
                    label=f"{results['servers'][key]['title']}: {entry['title']}",
                )
        panel.set_xscale("log")
        panel.set_yscale("log")
        panel.set_xlabel(label)
        panel.set_ylabel("median time (ms)")
        panel.grid(True, which="both", alpha=0.3)
        panel.legend(fontsize="x-small")
    figure.suptitle(
        f"time of one request as the registry grows ({results['machine']['nproc']} cores, "
        f"{results['started_at']})"
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return {"path": str(path), "note": ""}
