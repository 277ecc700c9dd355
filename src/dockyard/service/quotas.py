"""Storage quotas per namespace: sizes as people write them, and the refusal a push meets.

Usage is counted in deduplicated bytes (see `metadata.quotas`): blobs linked and manifests
stored in the namespace's repositories, each digest once. It falls as soon as the last link or
manifest of a digest in the namespace goes (a blob DELETE, a manifest DELETE, a repository
removed, garbage collection unlinking it), not when the bytes leave the disk.
"""

from __future__ import annotations

import re

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import validate_name
from dockyard.metadata.base import MetadataStore, NamespaceQuota, QuotaExceeded
from dockyard.service.audit import AuditService

UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4, "p": 1000**5}
BINARY = {"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40, "pi": 1 << 50}
_SIZE = re.compile(r"([0-9]{1,18}(?:\.[0-9]{1,6})?)\s*([kmgtp]i?)?b?", re.IGNORECASE)
# Beyond what a BigInteger column holds, a quota is no limit at all.
MAX_QUOTA = (1 << 63) - 1
NO_QUOTA = ("none", "unlimited")


def parse_quota(text: str) -> int | None:
    """`10GiB`, `500MB`, `1.5T`, `1048576` (bytes), or `none`. Decimal units are powers of
    1000 and binary ones (`KiB`, `MiB`, `GiB` …) of 1024, as `df -H` and `df -h` print them."""
    value = text.strip()
    if value.lower() in NO_QUOTA:
        return None
    match = _SIZE.fullmatch(value)
    if match is None:
        raise RegistryError(
            ErrorCode.BAD_REQUEST, "a quota is a size such as 10GiB, 500MB or 1.5T, or none"
        )
    unit = (match.group(2) or "").lower()
    size = int(float(match.group(1)) * (BINARY.get(unit) or UNITS[unit]))
    if size > MAX_QUOTA:
        raise RegistryError(ErrorCode.BAD_REQUEST, "a quota is at most 8 EiB")
    return size


def human(size: int) -> str:
    """Bytes in binary units with one decimal at most: `10.2 GiB`, `10 GiB`, `512 B`."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            text = f"{value:.1f}".removesuffix(".0")
            return f"{text} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def refusal(exc: QuotaExceeded) -> RegistryError:
    return RegistryError(
        ErrorCode.DENIED,
        f"quota exceeded: {human(exc.would_use)} of {human(exc.limit)} used in {exc.namespace}",
        detail={"namespace": exc.namespace, "bytes": exc.would_use, "limit": exc.limit},
    )


class QuotaService:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta
        self.audit = AuditService(meta)

    async def set(self, namespace: str, limit: str | int | None) -> NamespaceQuota:
        """`limit` as text (`10GiB`, `none`), a number of bytes, or None for no quota."""
        namespace = _namespace(namespace)
        if isinstance(limit, str):
            limit = parse_quota(limit)
        elif limit is not None and not 0 <= limit <= MAX_QUOTA:
            raise RegistryError(ErrorCode.BAD_REQUEST, "a quota is a number of bytes, 0 or more")
        await self.meta.set_quota(
            namespace,
            limit,
            audit=self.audit.entry("policy.quota", namespace, detail={"limit": limit}),
        )
        return await self.meta.quota(namespace)

    async def get(self, namespace: str) -> NamespaceQuota:
        return await self.meta.quota(_namespace(namespace))


def _namespace(name: str) -> str:
    validate_name(name)
    if "/" in name:
        raise RegistryError(
            ErrorCode.BAD_REQUEST, "a quota is set on a namespace (acme), not a repository"
        )
    return name
