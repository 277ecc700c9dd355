"""What `dockyard serve` does once its options are read: merge the settings, check them, and
run the server. The Typer command (`cli/main.py`) and the fast reading of a plain command line
(`cli/serve_argv.py`) both end here, so the server starts the same way from either; nothing
here loads Typer unless a message must be printed."""

from __future__ import annotations

import logging.config
from pathlib import Path

from dockyard.cli.exits import USAGE, fail
from dockyard.config import (
    ConfigError,
    Settings,
    check_security,
    load_settings,
    parse_upstream_flag,
)


def settings_or_fail(config: Path | None, **overrides: object) -> Settings:
    """The merged settings; a configuration that cannot be used exits with status 2."""
    try:
        return load_settings(config, overrides)
    except ConfigError as exc:
        raise fail(str(exc), USAGE) from exc


def serve_with(
    *,
    listen: str | None = None,
    data_dir: Path | None = None,
    config: Path | None = None,
    workers: int | None = None,
    read_only: bool | None = None,
    ui: bool | None = None,
    insecure_no_auth: bool | None = None,
    auth: bool | None = None,
    public_url: str | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    storage: str | None = None,
    s3_endpoint: str | None = None,
    s3_region: str | None = None,
    s3_path_style: bool | None = None,
    metadata: str | None = None,
    proxy: list[str] | None = None,
    mirror: str | None = None,
    header_timeout: float | None = None,
    shutdown_timeout: int | None = None,
    max_requests_per_client: int | None = None,
    anonymous_pull_limit: int | None = None,
    authenticated_pull_limit: int | None = None,
    pull_limit_window: int | None = None,
    login_failure_limit: int | None = None,
    login_failure_window: int | None = None,
    password_min_length: int | None = None,
    gc: bool | None = None,
    gc_grace: int | None = None,
    gc_interval: float | None = None,
    gc_untagged: bool | None = None,
    metrics: bool | None = None,
    metrics_listen: str | None = None,
    verbose: bool = False,
    log_format: str | None = None,
    no_fsync: bool = False,
) -> None:
    """Serve with the options of `dockyard serve` (names as its parameters); returns when the
    server has stopped."""
    proxies = None
    if proxy:
        try:
            proxies = [
                {**parse_upstream_flag(p), "mirror": parse_upstream_flag(p)["name"] == mirror}
                for p in proxy
            ]
        except ConfigError as exc:
            raise fail(str(exc), USAGE) from exc
    elif mirror:
        raise fail("--mirror names one of the --proxy upstreams", USAGE)
    overrides: dict[str, object] = dict(
        proxies=proxies,
        metadata=metadata,
        storage=storage,
        s3_endpoint=s3_endpoint,
        s3_region=s3_region,
        s3_path_style=s3_path_style,
        tls_cert=tls_cert,
        tls_key=tls_key,
        public_url=public_url,
        listen=listen,
        data_dir=data_dir,
        workers=workers,
        read_only=read_only,
        ui=ui,
        insecure_no_auth=insecure_no_auth,
        auth=auth,
        fsync=False if no_fsync else None,
        header_timeout_seconds=header_timeout,
        shutdown_timeout_seconds=shutdown_timeout,
        max_requests_per_client=max_requests_per_client,
        anonymous_pull_limit=anonymous_pull_limit,
        authenticated_pull_limit=authenticated_pull_limit,
        pull_limit_window_seconds=pull_limit_window,
        login_failure_limit=login_failure_limit,
        login_failure_window_seconds=login_failure_window,
        password_min_length=password_min_length,
        gc=gc,
        gc_grace_seconds=gc_grace,
        gc_interval_seconds=gc_interval,
        gc_untagged_manifests=gc_untagged,
        metrics=metrics,
        metrics_listen=metrics_listen,
        log_format=log_format,
    )
    settings = settings_or_fail(config, **overrides)
    try:
        check_security(settings)
    except ConfigError as exc:
        raise fail(str(exc), USAGE) from exc
    from dockyard.cli.serve import logging_config, run

    def reload() -> Settings:
        # The same sources in the same order as at start; ConfigError is the reloader's to log.
        return load_settings(config, overrides)

    logging.config.dictConfig(logging_config(verbose, settings.log_format))
    run(settings, verbose, reload)
