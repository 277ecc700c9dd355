"""What a SIGHUP to `dockyard serve` reloads, without dropping a connection.

Before anything changes, this module reads the settings again (file, environment and the
command line's flags, in the same order as at start). A configuration that does not
validate, or a certificate that does not match its key (`check_security`, as at start), is
refused: the workers are then left as they are, since a worker that cannot load its
certificate would never start. Settings that name where the registry lives or how it
listens (`FIXED`) keep their values until a restart, with a warning.

Accepted settings reach the workers in one of two ways (`dockyard.cli.serve.reload_on_sighup`):

- The certificate and key files hold what the workers loaded: each worker takes the new
  settings in place (`dockyard.api.reloading`). No worker stops and no connection is
  closed, so nothing a client sends can be lost.
- The certificate or key changed: granian loads them once, when a worker starts (its Rust
  worker builds the TLS configuration from the files then), so the workers are replaced one
  at a time. A new worker listens before the old one is stopped, and the old one answers the
  requests it has, as on SIGTERM; but stopping it closes its own listening socket, whose
  queued connections the kernel resets (unless `net.ipv4.tcp_migrate_req` is 1), drops the
  TLS handshakes it had begun, and closes its idle keep-alive connections, on which a client
  may be sending a request at that very moment. Clients send such a request again (Go's
  transport does for docker, podman and containerd); a certificate renewal is when it happens.

Other parts add to `RELOAD_CALLBACKS` what must follow a reload in the serving process
(webhook senders, for instance); each is called with the old and the new settings after the
new ones are accepted and before the workers take them.
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
        self._certificate = certificate_files(current)
        # Whether the last accepted reload brought a certificate or key the workers have not
        # loaded: then they must be replaced.
        self.new_certificate = False

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
        files = certificate_files(new)
        self.new_certificate = files != self._certificate
        for callback in RELOAD_CALLBACKS:
            try:
                callback(self.current, new)
            except Exception:
                log.exception("SIGHUP: a reload callback failed")
        if self.new_certificate:
            how = "replacing the workers for the new certificate"
        else:
            how = "the workers take them in place"
        log.info(
            "SIGHUP: %s, %s",
            f"new {', '.join(changed)}" if changed else "no setting changed",
            how,
        )
        self.current = new
        self._certificate = files
        return new


def certificate_files(settings: Settings) -> tuple[bytes, bytes] | None:
    """What the certificate and key files hold, which a worker loads when it starts."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    try:
        return settings.tls_cert.read_bytes(), settings.tls_key.read_bytes()
    except OSError:
        # check_security read them a moment ago; a file gone since is a change.
        return (b"", b"")
