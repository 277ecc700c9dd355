"""`dockyard doctor`: the checks an operator runs before (or instead of) guessing why a
registry will not start or serve: storage writable with room to spare, metadata reachable and
migrated, a clock tokens can rely on, a TLS pair that matches and is not about to expire.

Each check is one `Finding`; a check that cannot run (nothing to compare with) says so rather
than passing silently. Nothing here is created or migrated: the doctor only looks, apart from
the one small blob it writes and removes to prove the storage takes writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from dockyard.config import Settings
from dockyard.metadata.base import MetadataStore
from dockyard.service.registry import METADATA_FILE, open_blob_store
from dockyard.storage.base import BlobStore

Status = Literal["ok", "warn", "fail"]

# A clock this far from the database's makes tokens one replica issues look not yet valid (or
# already expired) to another: the shortest token lifetime is 30 seconds.
CLOCK_SKEW_FAIL = dt.timedelta(seconds=30)
CLOCK_SKEW_WARN = dt.timedelta(seconds=2)
# A database that does not answer within this long is as good as unreachable to a server.
REACH_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    status: Status
    detail: str


@dataclass(frozen=True, slots=True)
class Thresholds:
    min_free_bytes: int = 1 << 30
    cert_warn_days: int = 14


async def check_storage(
    store: BlobStore, settings: Settings, thresholds: Thresholds
) -> list[Finding]:
    """A blob written, read back and removed; on the filesystem, the free space too."""
    on_s3 = bool(settings.storage and settings.storage.startswith("s3://"))
    where = settings.storage if on_s3 else str(settings.data_dir.resolve())
    probe = b"dockyard doctor " + os.urandom(16).hex().encode()
    digest = "sha256:" + hashlib.sha256(probe).hexdigest()
    findings = []
    try:
        await store.put(digest, probe)
        try:
            if await store.get(digest) != probe:
                raise OSError("the blob written reads back different")
        finally:
            await store.delete(digest)
        findings.append(Finding("storage", "ok", f"{where} takes writes"))
    except Exception as exc:
        findings.append(Finding("storage", "fail", f"{where}: cannot write ({_reason(exc)})"))
    if on_s3:
        findings.append(Finding("space", "ok", "S3 storage: no free space to measure"))
        return findings
    try:
        free = shutil.disk_usage(settings.data_dir).free
    except OSError as exc:
        findings.append(Finding("space", "fail", f"{where}: {_reason(exc)}"))
        return findings
    shown = f"{_size(free)} free in {where}"
    if free < thresholds.min_free_bytes:
        findings.append(
            Finding("space", "fail", f"{shown}, below {_size(thresholds.min_free_bytes)}")
        )
    else:
        findings.append(Finding("space", "ok", shown))
    return findings


async def check_metadata(
    meta_opener: Callable[[], MetadataStore], settings: Settings, now: Callable[[], dt.datetime]
) -> list[Finding]:
    """Reachable, migrated to this version's newest revision, and a clock that agrees with
    this machine's. `meta_opener` gives the store (opened lazily: opening SQLite may fail)."""
    where = "SQLite in the data folder" if not settings.metadata else "PostgreSQL"
    if not settings.metadata and not (settings.data_dir / METADATA_FILE).is_file():
        return [
            Finding(
                "metadata",
                "fail",
                f"{settings.data_dir.resolve()} holds no registry (no metadata.db); "
                "`dockyard serve` creates one",
            ),
            Finding("clock", "fail", "not checked: the metadata database is missing"),
        ]
    meta: MetadataStore | None = None
    try:
        meta = meta_opener()
        state = await asyncio.wait_for(meta.schema_state(), REACH_TIMEOUT)
        checked_at = now()
    except Exception as exc:
        reason = _reason(exc)
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {REACH_TIMEOUT:.0f} s"
        return [
            Finding("metadata", "fail", f"{where} is unreachable: {reason}"),
            Finding("clock", "fail", "not checked: the metadata database is unreachable"),
        ]
    finally:
        if meta is not None:
            await meta.close()
    findings = []
    if state.revision is None:
        findings.append(Finding("metadata", "fail", f"{where} holds no registry (no schema)"))
    elif state.revision != state.head:
        findings.append(
            Finding(
                "metadata",
                "fail",
                f"{where} schema is at revision {state.revision}, this version needs "
                f"{state.head}: run `dockyard db upgrade` (a newer schema means this "
                "dockyard is older than the one that migrated it)",
            )
        )
    else:
        findings.append(Finding("metadata", "ok", f"{where} reachable, schema at {state.head}"))
    skew = abs(checked_at - state.database_time)
    shown = f"{skew.total_seconds():.1f} s from the database's clock"
    if not settings.metadata:
        findings.append(Finding("clock", "ok", f"{shown} (SQLite: this machine's own clock)"))
    elif skew > CLOCK_SKEW_FAIL:
        findings.append(
            Finding(
                "clock",
                "fail",
                f"{shown}: tokens issued by one replica would be refused by another; "
                "synchronise the clocks (NTP)",
            )
        )
    elif skew > CLOCK_SKEW_WARN:
        findings.append(Finding("clock", "warn", f"{shown}; NTP would keep it closer"))
    else:
        findings.append(Finding("clock", "ok", shown))
    return findings


def check_tls(settings: Settings, thresholds: Thresholds, now: dt.datetime) -> Finding:
    """The pair matches, is readable and unexpired, and has `cert_warn_days` left."""
    from dockyard.core.tls import TlsFileError, check_pair

    if settings.tls_cert is None and settings.tls_key is None:
        return Finding("tls", "ok", "not configured (plain HTTP, or TLS ends at a proxy)")
    if settings.tls_cert is None or settings.tls_key is None:
        return Finding("tls", "fail", "tls_cert and tls_key go together: give both or neither")
    try:
        certificate = check_pair(settings.tls_cert, settings.tls_key)
    except TlsFileError as exc:
        return Finding("tls", "fail", str(exc))
    left = certificate.not_after - now
    until = f"valid until {certificate.not_after:%Y-%m-%d %H:%M} UTC"
    if left < dt.timedelta(days=thresholds.cert_warn_days):
        return Finding(
            "tls", "warn", f"{settings.tls_cert} expires in {left.days} day(s) ({until})"
        )
    return Finding("tls", "ok", f"{settings.tls_cert} matches its key, {until}")


async def examine(
    settings: Settings,
    thresholds: Thresholds,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> list[Finding]:
    """Every check but the configuration's (which the caller made by loading `settings`)."""
    from dockyard.metadata.sql import SQLMetadataStore

    findings: list[Finding] = []
    on_s3 = bool(settings.storage and settings.storage.startswith("s3://"))
    if not on_s3 and not settings.data_dir.is_dir():
        # Opening the store would create the folder: a doctor only looks.
        missing = f"{settings.data_dir.resolve()} does not exist (`dockyard serve` creates it)"
        findings.append(Finding("storage", "fail", missing))
    else:
        try:
            store = open_blob_store(settings)
        except Exception as exc:
            findings.append(Finding("storage", "fail", f"cannot open it: {_reason(exc)}"))
        else:
            findings += await check_storage(store, settings, thresholds)

    def open_meta() -> SQLMetadataStore:
        if settings.metadata:
            return SQLMetadataStore.open_postgres(settings.metadata)
        return SQLMetadataStore.open_sqlite(settings.data_dir / METADATA_FILE, migrate=False)

    findings += await check_metadata(open_meta, settings, now)
    findings.append(check_tls(settings, thresholds, now()))
    return findings


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    text = str(orig if orig is not None else exc) or type(exc).__name__
    return text.splitlines()[0]


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
