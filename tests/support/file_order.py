"""The order in which `make test` (pytest-xdist, `--dist loadfile`) hands test files to its workers:
the longest files first, the files made only of `alone` tests last.

Left to itself, xdist hands out files by their number of tests, most first. Time is not in
proportion to it: a file of 225 quick checks went first, while files of a few long tests (a
server pair each, a workload of a minute, a container build) came last, and the run ended with
one worker busy on one of them and the others idle. Handed out longest first, the long files
overlap with the many short ones, which then fill the end evenly.

`alone` files (every test marked `alone`: they run while no other test does) go last: an `alone`
test first waits for the test each other worker is running, and the others start nothing new
meanwhile, so it costs least beside the short files the end of the run is made of.

`SECONDS` is what each file took in one run of the suite (the sum of its tests' durations in
`--junitxml`); only the order matters, so figures from a loaded machine serve. A file not in it
goes before every file in it: it is new, or that run never reached it (the run behind the table
was stopped after 50 minutes at load 25-40, with 168 files of few tests, the benchmark, proxy,
robustness, scale-out and packaging tests among them, still to go), and a short file run early
costs nothing while a long file run late is the tail this order is for. To refresh the table:
`pytest ... --junitxml=run.xml -o junit_family=xunit1`, then
`python -m tests.support.file_order run.xml`.

The controller is told to keep the workers' order (`--no-loadscope-reorder`); each worker sorts
its collection the same way, so all agree (xdist requires identical collections).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import Any

import pytest

ORDER_KEY = "dockyard_file_order"
# Files whose tests wait for what `make test` prepares in the background (the container image's
# Debian base, minutes of debootstrap on a new machine): handed out after every other file but
# the `alone` ones, so the base is made by then instead of holding a worker idle.
WAITING = frozenset({"tests/packaging/test_container_image.py"})

# Seconds per file: `make test`'s command (3 workers) on the shared 2-core machine at load 25-40,
# 7 Dec 2026, stopped at 1,871 of 2,530 tests (see the module's docstring).
SECONDS: dict[str, float] = {
    "tests/signatures/test_sign_verify.py": 1358.3,
    "tests/ops/test_audit.py": 719.4,
    "tests/usability/test_messages.py": 712.2,
    "tests/usability/test_tls_first.py": 545.3,
    "tests/security/test_sessions.py": 534.8,
    "tests/stores/test_listing_pages.py": 399.5,
    "tests/http/test_immutable_tags.py": 310.1,
    "tests/security/test_redteam_content.py": 290.2,
    "tests/stores/test_image_views.py": 276.9,
    "tests/auth/test_admin_cli.py": 269.8,
    "tests/usability/test_multiarch_safety.py": 269.1,
    "tests/stores/test_audited_changes.py": 237.8,
    "tests/http/test_many_tags.py": 226.9,
    "tests/security/test_serve_hardening.py": 203.9,
    "tests/stores/test_quotas.py": 170.5,
    "tests/usability/test_admin_folder.py": 169.6,
    "tests/security/test_account_api.py": 149.9,
    "tests/auth/test_rate_limits.py": 145.3,
    "tests/http/test_quotas.py": 121.8,
    "tests/stores/test_gc_queue.py": 120.0,
    "tests/web/test_sign_in.py": 107.9,
    "tests/auth/test_matrix.py": 90.2,
    "tests/security/test_http_hardening.py": 88.9,
    "tests/auth/test_policy_api.py": 88.1,
    "tests/auth/test_tokens.py": 86.8,
    "tests/http/test_manifests.py": 72.3,
    "tests/stores/test_audit_log.py": 66.0,
    "tests/interop/test_skopeo.py": 66.0,
    "tests/auth/test_signature_policy_api.py": 64.2,
    "tests/proxy/test_namespace.py": 63.9,
    "tests/stores/test_repository_pages.py": 63.3,
    "tests/stores/test_events.py": 61.9,
    "tests/client/test_registry_client.py": 61.2,
    "tests/stores/test_blob_store.py": 54.9,
    "tests/stores/test_metadata_store.py": 51.9,
    "tests/http/test_newer_spec.py": 51.2,
    "tests/conformance/test_push.py": 47.7,
    "tests/auth/test_repository_info_api.py": 42.2,
    "tests/stores/test_retention.py": 37.2,
    "tests/http/test_uploads.py": 36.2,
    "tests/client/test_auth.py": 35.4,
    "tests/unit/test_parsers.py": 28.2,
    "tests/conformance/test_discovery.py": 26.3,
    "tests/conformance/test_pull.py": 21.0,
    "tests/http/test_errors.py": 19.6,
    "tests/unit/test_readme_sanitiser.py": 19.2,
    "tests/unit/test_notation.py": 15.7,
    "tests/client/test_archives.py": 12.3,
    "tests/client/test_credentials.py": 11.2,
    "tests/unit/test_manifest.py": 11.0,
    "tests/unit/test_reference.py": 10.8,
    "tests/conformance/test_management.py": 8.5,
    "tests/client/test_layout.py": 7.9,
    "tests/unit/test_serve_argv.py": 7.5,
    "tests/unit/test_settings_fields.py": 3.9,
    "tests/unit/test_sigstore_bundle.py": 3.9,
    "tests/unit/test_web_sessions.py": 2.2,
    "tests/unit/test_keys.py": 1.6,
    "tests/unit/test_listing_body.py": 0.5,
    "tests/unit/test_exits.py": 0.5,
    "tests/unit/test_cosign_format.py": 0.4,
    "tests/unit/test_dsse.py": 0.3,
    "tests/unit/test_tag_patterns.py": 0.2,
}


def ordered(items: list[pytest.Item], seconds: dict[str, float] | None = None) -> list[pytest.Item]:
    """`items` grouped by file: files not in the table first (most tests first), then the
    table's longest first, then the files that wait for the image base, files of `alone` tests
    last; each file's tests keep their order
    (pytest's own ordering of parametrised fixtures within it)."""
    by_file: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        by_file[item.nodeid.split("::", 1)[0]].append(item)

    def key(path: str) -> tuple[bool, bool, bool, float]:
        tests = by_file[path]
        alone = all(t.get_closest_marker("alone") is not None for t in tests)
        waits = path in WAITING
        measured = (SECONDS if seconds is None else seconds).get(path)
        if measured is None:
            return alone, waits, False, -len(tests)
        return alone, waits, True, -measured

    # sorted() is stable: files of equal keys keep their collection order.
    return [item for path in sorted(by_file, key=key) for item in by_file[path]]


def pytest_configure(config: pytest.Config) -> None:
    """(controller) Under `--dist loadfile`, hand out files in the workers' collection order."""
    if (
        getattr(config, "workerinput", None) is None
        and config.getoption("dist", "no") == "loadfile"
    ):
        config.option.loadscopereorder = False


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """(xdist, in the controller) Tell the workers to order their collection."""
    if node.config.getoption("dist", "no") == "loadfile":
        node.workerinput[ORDER_KEY] = True


# trylast: after pytest's own reordering (parametrised higher-scoped fixtures) and the markers.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and workerinput.get(ORDER_KEY):
        items[:] = ordered(items)


def seconds_by_file(junit_xml: str) -> dict[str, float]:
    """Each test file's summed test time in a `--junitxml` report of junit_family xunit1 (the
    family that names each test's file)."""
    totals: dict[str, float] = defaultdict(float)
    for case in ET.parse(junit_xml).iter("testcase"):
        if "file" in case.attrib:  # not a collection error's
            totals[case.attrib["file"]] += float(case.get("time") or 0.0)
    return dict(totals)


if __name__ == "__main__":
    totals = seconds_by_file(sys.argv[1])
    for path, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f'    "{path}": {seconds:.1f},')
