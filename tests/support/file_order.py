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
goes before every file in it: it is new, and a short file run early costs nothing while a long
file run late is the tail this order is for. (A table from a run that was stopped before its
end left most files out, the long benchmark and scale-out files among them, and so ordered
them by their number of tests.) To refresh the table:
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

# Seconds per file: `make test`'s command (3 workers) on a clean clone of main (`6d71906`), the
# 2-core machine otherwise quiet, 8 Dec 2026: every file, 2,599 tests, 19:18.
SECONDS: dict[str, float] = {
    "tests/signatures/test_policy.py": 116.5,
    "tests/packaging/test_container_image.py": 83.0,
    "tests/usability/test_tls_first.py": 73.4,
    "tests/security/test_sessions.py": 69.5,
    "tests/http/test_quotas.py": 60.6,
    "tests/security/test_upload_integrity.py": 58.4,
    "tests/usability/test_messages.py": 57.8,
    "tests/gc/test_gc_race.py": 54.3,
    "tests/signatures/test_sign_verify.py": 51.4,
    "tests/ops/test_audit.py": 48.8,
    "tests/web/test_namespace_settings.py": 47.2,
    "tests/web/test_repository_pages.py": 46.6,
    "tests/signatures/test_signature_removal.py": 45.9,
    "tests/security/test_serve_hardening.py": 45.8,
    "tests/security/test_redteam_content.py": 44.6,
    "tests/bench/test_events_bench.py": 43.1,
    "tests/bench/test_sames3_bench.py": 42.6,
    "tests/client/test_cli_images.py": 42.3,
    "tests/security/test_redteam_auth.py": 42.3,
    "tests/bench/test_gc_bench.py": 38.0,
    "tests/usability/test_discover_attach.py": 37.2,
    "tests/ops/test_webhooks.py": 37.2,
    "tests/security/test_proxy_isolation.py": 36.8,
    "tests/bench/test_page_bench.py": 35.8,
    "tests/usability/test_admin_folder.py": 35.4,
    "tests/robustness/test_graceful_restart.py": 32.8,
    "tests/web/test_sign_in.py": 32.6,
    "tests/client/test_registry_client.py": 32.5,
    "tests/auth/test_matrix.py": 32.4,
    "tests/ops/test_metrics.py": 32.0,
    "tests/gc/test_gc_commands.py": 31.8,
    "tests/security/test_account_api.py": 30.9,
    "tests/signatures/test_referrers_and_peers.py": 30.4,
    "tests/scaleout/test_replicas.py": 29.8,
    "tests/usability/test_doctor.py": 29.7,
    "tests/http/test_hot_reads.py": 28.8,
    "tests/web/test_account.py": 28.5,
    "tests/usability/test_multiarch_safety.py": 28.4,
    "tests/bench/test_scale_bench.py": 27.9,
    "tests/robustness/test_limits.py": 26.2,
    "tests/security/test_fsck.py": 26.0,
    "tests/auth/test_token_memory.py": 25.2,
    "tests/auth/test_tokens.py": 25.0,
    "tests/security/test_hostile_blob_upstream.py": 24.5,
    "tests/unit/test_serve_imports.py": 24.3,
    "tests/web/test_browse.py": 23.2,
    "tests/ops/test_health.py": 22.6,
    "tests/security/test_fuzz_families.py": 22.5,
    "tests/bench/test_metrics_bench.py": 22.4,
    "tests/ops/test_logs.py": 22.3,
    "tests/bench/test_idle_bench.py": 22.2,
    "tests/auth/test_admin_cli.py": 21.5,
    "tests/gc/test_quota_refusals.py": 21.5,
    "tests/bench/test_bench_smoke.py": 21.1,
    "tests/scaleout/test_first_pushes.py": 21.1,
    "tests/bench/test_signed_bench.py": 21.0,
    "tests/stores/test_audited_changes.py": 19.7,
    "tests/auth/test_account_disabled.py": 19.6,
    "tests/proxy/test_pulls.py": 19.3,
    "tests/web/test_admin.py": 18.9,
    "tests/http/test_immutable_tags.py": 18.6,
    "tests/ops/test_webhook_formats.py": 18.6,
    "tests/http/test_retention.py": 18.4,
    "tests/stores/test_image_views.py": 18.3,
    "tests/signatures/test_attest.py": 18.1,
    "tests/http/test_many_tags.py": 18.0,
    "tests/stores/test_postgres_round_trips.py": 17.2,
    "tests/stores/test_listing_pages.py": 16.6,
    "tests/proxy/test_single_flight.py": 16.5,
    "tests/stores/test_blob_store.py": 16.0,
    "tests/usability/test_notation_verify.py": 15.7,
    "tests/http/test_remembered_reads.py": 15.6,
    "tests/security/test_cache_pull_limit.py": 15.5,
    "tests/web/test_copy_buttons.py": 14.6,
    "tests/auth/test_rate_limits.py": 13.9,
    "tests/ops/test_pull_events.py": 13.8,
    "tests/client/test_layout.py": 13.7,
    "tests/stores/test_gc_queue.py": 13.5,
    "tests/auth/test_policy_api.py": 13.4,
    "tests/proxy/test_upstream_failures.py": 13.2,
    "tests/web/test_signature_status.py": 12.9,
    "tests/usability/test_readme_tour.py": 12.7,
    "tests/security/test_http_hardening.py": 12.5,
    "tests/bench/test_startup_bench.py": 12.4,
    "tests/signatures/test_attest_access.py": 12.4,
    "tests/proxy/test_signature_policy.py": 12.3,
    "tests/http/test_serve_options.py": 12.2,
    "tests/auth/test_repository_info_api.py": 12.0,
    "tests/http/test_listing_memory.py": 12.0,
    "tests/auth/test_repository_api.py": 11.4,
    "tests/auth/test_account_api.py": 11.2,
    "tests/conformance/test_push.py": 11.1,
    "tests/signatures/test_access.py": 10.9,
    "tests/scaleout/test_migrate.py": 10.9,
    "tests/proxy/test_namespace.py": 10.7,
    "tests/auth/test_auth_clients.py": 10.6,
    "tests/interop/test_registry_proxying.py": 10.5,
    "tests/signatures/test_policy_notation.py": 10.1,
    "tests/signatures/test_policy_peers.py": 9.9,
    "tests/gc/test_native_exit.py": 9.4,
    "tests/signatures/test_attest_bundle.py": 9.3,
    "tests/http/test_repositories.py": 9.1,
    "tests/auth/test_signature_policy_api.py": 8.9,
    "tests/unit/test_markers.py": 8.7,
    "tests/auth/test_catalog_memory.py": 8.6,
    "tests/signatures/test_readme_signing.py": 8.5,
    "tests/http/test_newer_spec.py": 8.3,
    "tests/interop/test_podman_buildah.py": 8.3,
    "tests/proxy/test_quota.py": 8.3,
    "tests/robustness/test_early_stop.py": 8.2,
    "tests/web/test_sessions.py": 7.9,
    "tests/http/test_uploads.py": 7.7,
    "tests/unit/test_file_order.py": 7.7,
    "tests/stores/test_quotas.py": 7.6,
    "tests/robustness/test_cache_prune.py": 7.4,
    "tests/robustness/test_concurrency.py": 7.3,
    "tests/robustness/test_reload.py": 7.1,
    "tests/interop/test_skopeo.py": 7.1,
    "tests/ops/test_webhook_api.py": 7.0,
    "tests/http/test_manifests.py": 6.7,
    "tests/stores/test_s3_push_requests.py": 6.7,
    "tests/signatures/test_keyless.py": 6.5,
    "tests/unit/test_parsers.py": 6.5,
    "tests/robustness/test_crash.py": 6.3,
    "tests/robustness/test_idle_connections.py": 6.2,
    "tests/client/test_redirects.py": 6.1,
    "tests/conformance/test_pull.py": 6.1,
    "tests/gc/test_gc_pacing.py": 6.0,
    "tests/client/test_login_cli.py": 5.5,
    "tests/proxy/test_access.py": 5.3,
    "tests/stores/test_account_disabled.py": 5.2,
    "tests/proxy/test_repository_delete.py": 5.1,
    "tests/client/test_push_tags.py": 5.1,
    "tests/web/test_replicas.py": 5.0,
    "tests/stores/test_repository_pages.py": 4.8,
    "tests/bench/test_head_load.py": 4.7,
    "tests/conformance/test_discovery.py": 4.7,
    "tests/stores/test_events.py": 4.7,
    "tests/proxy/test_upstream_auth.py": 4.4,
    "tests/interop/test_chunk_minimum.py": 4.2,
    "tests/stores/test_migrate_head.py": 4.2,
    "tests/bench/test_ceiling.py": 4.1,
    "tests/client/test_auth.py": 4.1,
    "tests/stores/test_tag_history.py": 4.0,
    "tests/http/test_tls.py": 3.9,
    "tests/bench/test_inproc.py": 3.8,
    "tests/client/test_blob_body.py": 3.5,
    "tests/stores/test_content_lock.py": 3.4,
    "tests/http/test_errors.py": 3.3,
    "tests/gc/test_gc_stop.py": 3.3,
    "tests/robustness/test_port_taken.py": 3.2,
    "tests/gc/test_gc_pipeline.py": 3.2,
    "tests/robustness/test_upload_burst_memory.py": 3.1,
    "tests/gc/test_delete_during_collection.py": 3.0,
    "tests/robustness/test_transfer_faults.py": 3.0,
    "tests/bench/test_listing_client.py": 2.9,
    "tests/bench/test_startup_stops.py": 2.9,
    "tests/ops/test_webhook_cli.py": 2.8,
    "tests/proxy/test_repository.py": 2.8,
    "tests/stores/test_audit_log.py": 2.7,
    "tests/usability/test_packaging.py": 2.5,
    "tests/stores/test_retention.py": 2.4,
    "tests/stores/test_remembered_lookups.py": 2.4,
    "tests/proxy/test_peers.py": 2.3,
    "tests/unit/test_serve_collections.py": 2.1,
    "tests/client/test_archives.py": 2.1,
    "tests/unit/test_machine_lock.py": 2.1,
    "tests/ops/test_event_loop.py": 2.0,
    "tests/unit/test_reference.py": 1.9,
    "tests/stores/test_metadata_store.py": 1.9,
    "tests/unit/test_serve_import_set.py": 1.8,
    "tests/unit/test_worker_preload.py": 1.8,
    "tests/stores/test_runners.py": 1.8,
    "tests/conformance/test_management.py": 1.8,
    "tests/unit/test_layers.py": 1.7,
    "tests/stores/test_signature_policies.py": 1.6,
    "tests/stores/test_memberships.py": 1.5,
    "tests/proxy/test_upstream_requests.py": 1.4,
    "tests/stores/test_repository_queries.py": 1.4,
    "tests/unit/test_notation.py": 1.3,
    "tests/bench/test_server_starts.py": 1.3,
    "tests/unit/test_memory.py": 1.3,
    "tests/bench/test_peak_sampler.py": 1.3,
    "tests/stores/test_tag_rules.py": 1.3,
    "tests/stores/test_group_commit.py": 1.3,
    "tests/stores/test_remembered_pages.py": 1.2,
    "tests/stores/test_garbage_queries.py": 1.2,
    "tests/client/test_credentials.py": 1.2,
    "tests/unit/test_manifest.py": 1.1,
    "tests/bench/test_cpu_seconds.py": 1.1,
    "tests/bench/test_wrk_stop.py": 1.0,
    "tests/stores/test_namespace_turns.py": 1.0,
    "tests/unit/test_footprint.py": 0.8,
    "tests/interop/test_oras.py": 0.8,
    "tests/stores/test_wal_sync.py": 0.8,
    "tests/stores/test_wal_index.py": 0.8,
    "tests/unit/test_bounded_cache.py": 0.7,
    "tests/unit/test_assembly.py": 0.7,
    "tests/unit/test_serve_argv.py": 0.7,
    "tests/interop/test_umoci.py": 0.6,
    "tests/unit/test_readme_sanitiser.py": 0.6,
    "tests/stores/test_counters.py": 0.6,
    "tests/stores/test_namespace_links.py": 0.5,
    "tests/stores/test_pull_tally.py": 0.5,
    "tests/stores/test_direct_sql.py": 0.5,
    "tests/stores/test_postgres_template.py": 0.5,
    "tests/stores/test_identity.py": 0.5,
    "tests/stores/test_upload_start.py": 0.4,
    "tests/unit/test_web_routes.py": 0.4,
    "tests/unit/test_small_upload_steps.py": 0.4,
    "tests/unit/test_settings_fields.py": 0.4,
    "tests/unit/test_error_table.py": 0.4,
    "tests/unit/test_sigstore_bundle.py": 0.3,
    "tests/unit/test_file_lock.py": 0.3,
    "tests/unit/test_relay.py": 0.2,
    "tests/stores/test_schema_state.py": 0.2,
    "tests/unit/test_routes.py": 0.2,
    "tests/unit/test_web_sessions.py": 0.1,
    "tests/unit/test_request_id.py": 0.1,
    "tests/unit/test_keys.py": 0.1,
    "tests/unit/test_access_log.py": 0.1,
    "tests/unit/test_pull_counting.py": 0.1,
    "tests/unit/test_handover.py": 0.1,
    "tests/unit/test_serve_start.py": 0.1,
    "tests/unit/test_keyless_vectors.py": 0.1,
    "tests/unit/test_reloading.py": 0.1,
    "tests/unit/test_tag_patterns.py": 0.0,
    "tests/unit/test_cosign_format.py": 0.0,
    "tests/unit/test_listing_body.py": 0.0,
    "tests/unit/test_dsse.py": 0.0,
    "tests/unit/test_exits.py": 0.0,
    "tests/unit/test_jws.py": 0.0,
    "tests/unit/test_metrics_folder.py": 0.0,
    "tests/ops/test_metrics_gathering.py": 0.0,
    "tests/client/test_transfer.py": 0.0,
    "tests/robustness/test_write_leftovers.py": 0.0,
    "tests/unit/test_pull_key.py": 0.0,
    "tests/proxy/test_follower_race.py": 0.0,
    "tests/bench/test_round_order.py": 0.0,
    "tests/unit/test_log_format.py": 0.0,
    "tests/proxy/test_head_while_publishing.py": 0.0,
    "tests/unit/test_event_delivery_rules.py": 0.0,
    "tests/unit/test_audit_names.py": 0.0,
    "tests/unit/test_start_log.py": 0.0,
    "tests/unit/test_gc_batches.py": 0.0,
    "tests/unit/test_referrers_tag.py": 0.0,
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
