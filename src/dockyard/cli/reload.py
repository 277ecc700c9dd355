"""What a SIGHUP to `dockyard serve` reloads, without dropping a connection.

granian answers SIGHUP by replacing its workers one at a time: a new worker starts (and
listens) before the old one is told to stop, and the old one finishes its requests in
progress as on SIGTERM. A new worker reads the TLS certificate and key from their files and
its settings from the environment, so both are reloaded by the replacement; granian cannot
swap a certificate inside a running worker.

Before the replacement, this module reads the settings again (file, environment and the
command line's flags, in the same order as at start). A configuration that does not
validate, or a certificate that does not match its key (`check_security`, as at start), is
refused: the workers are then left as they are, since a worker that cannot load its
certificate would never start. Settings
that name where the registry lives or how it listens (`FIXED`) keep their values until a
restart, with a warning.

Other parts add to `RELOAD_CALLBACKS` what must follow a reload in the serving process
(webhook senders, for instance); each is called with the old and the new settings after the
new ones are accepted and before the workers are replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dockyard.config import ConfigError, Settings, check_security

log = logging.getLogger("dockyard")

# Callbacks run in the serving process on every accepted reload, as callback(old, new). An
# exception is logged and does not stop the reload.
RELOAD_CALLBACKS: list[Callable[[Settings, Settings], None]] = []

# Where the data lives, how the server listens and what it prepared at start (the signing key
# and first administrator come with accounts): changing them needs a restart.
FIXED = (
    "listen",
    "data_dir",
    "storage",
    "s3_endpoint",
    "s3_region",
    "s3_path_style",
    "s3_access_key",
    "s3_secret_key",
    "metadata",
    "redis_url",
    "workers",
    "tls_cert",
    "tls_key",
    "auth",
    "insecure_no_auth",
    "shutdown_timeout_seconds",
    # The metrics folder and listener and the log formatters belong to the serving process.
    "metrics",
    "metrics_listen",
    "log_format",
)


class Reloader:
    """Holds the settings in force; `reload()` gives the next ones, or None to keep them."""

    def __init__(self, current: Settings, load: Callable[[], Settings]) -> None:
        self.current = current
        self._load = load

    def reload(self) -> Settings | None:
        try:
            loaded = self._load()
            check_security(loaded)
        except ConfigError as exc:
            log.error("SIGHUP: the configuration is refused, nothing reloaded: %s", exc)
            return None
        kept = [key for key in FIXED if getattr(loaded, key) != getattr(self.current, key)]
        if kept:
            log.warning(
                "SIGHUP: %s cannot change without a restart; keeping the values in force",
                ", ".join(kept),
            )
        new = loaded.model_copy(update={key: getattr(self.current, key) for key in kept})
        changed = [
            key for key in Settings.model_fields if getattr(new, key) != getattr(self.current, key)
        ]
        for callback in RELOAD_CALLBACKS:
            try:
                callback(self.current, new)
            except Exception:
                log.exception("SIGHUP: a reload callback failed")
        log.info(
            "SIGHUP: reloading the workers%s",
            f" with new {', '.join(changed)}" if changed else " (certificate files re-read)",
        )
        self.current = new
        return new
