"""Pushing, pulling and deleting manifests; the referrers index built from their subjects."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

from dockyard.core import jsontext
from dockyard.core import mediatypes as mt
from dockyard.core.bounded_cache import BoundedCache
from dockyard.core.digest import Digest, referrers_tag
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.manifest import Descriptor, ParsedManifest, parse_manifest
from dockyard.core.names import is_valid_tag, validate_tag
from dockyard.metadata.base import (
    ChildrenMissing,
    ManifestInUse,
    ManifestRecord,
    MetadataStore,
    QuotaExceeded,
    Reference,
    TagImmutable,
)
from dockyard.service.audit import AuditService
from dockyard.service.blobs import ReadCheck, readable_blob_size
from dockyard.service.content_lock import ContentLock, NoLock
from dockyard.service.quotas import refusal as quota_refusal
from dockyard.service.tag_rules import refusal
from dockyard.storage.base import BlobStore


@dataclass(frozen=True, slots=True)
class PutResult:
    digest: str
    subject: str | None
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Referrers:
    index: bytes
    filtered: bool


def parse_reference(reference: str, *, lookup: bool = False) -> tuple[str | None, Digest | None]:
    """A manifest reference is a tag or a digest; anything else is refused.

    When looking up (GET, HEAD, DELETE), a malformed tag simply names nothing: 404, as the
    conformance suite expects. When pushing, it is an invalid manifest reference: 400.
    """
    if ":" in reference:
        return None, Digest.parse(reference)
    if not is_valid_tag(reference):
        if lookup:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": reference[:200]})
        raise RegistryError(
            ErrorCode.MANIFEST_INVALID, "invalid tag", detail={"tag": reference[:200]}
        )
    return reference, None


# Tags one manifest push may apply (`?tag=` repeated): the spec asks for at least 10. At 128
# characters a tag, 100 of them keep the request line near 14 KB, well under what granian
# reads (past 64 KiB it answers 414 itself, before the app).
MAX_TAGS_PER_PUSH = 100


# Manifest bytes by digest are immutable, so never stale: kept by total size, and a manifest
# over a quarter of it is not kept (it would push out many others).
CACHED_MANIFEST_BYTES = 32 * 1024 * 1024


def _content_cache() -> BoundedCache[str, bytes]:
    return BoundedCache(
        CACHED_MANIFEST_BYTES,
        max_weight=CACHED_MANIFEST_BYTES,
        weigh=len,
        max_entry_weight=CACHED_MANIFEST_BYTES // 4,
    )


class ManifestService:
    def __init__(
        self, blobs: BlobStore, meta: MetadataStore, lock: ContentLock | None = None
    ) -> None:
        self.lock = lock or NoLock()
        self.blobs = blobs
        self.meta = meta
        self.audit = AuditService(meta)
        self.cache = _content_cache()

    # -- push ----------------------------------------------------------------------------
    async def put(
        self,
        repository: str,
        reference: str,
        body: bytes,
        content_type: str | None,
        extra_tags: list[str] | None = None,
        may_read: ReadCheck | None = None,
    ) -> PutResult:
        tag, wanted = parse_reference(reference)
        if extra_tags and len(extra_tags) > MAX_TAGS_PER_PUSH:
            raise RegistryError(
                ErrorCode.TOO_MANY_TAGS,
                f"at most {MAX_TAGS_PER_PUSH} tags in one manifest push",
                detail={"tags": len(extra_tags), "max": MAX_TAGS_PER_PUSH},
            )
        tags = [validate_tag(t) for t in (extra_tags or [])]
        if tag is not None:
            tags.insert(0, tag)
        manifest = parse_manifest(body, content_type)
        algorithm = wanted.algorithm if wanted else "sha256"
        digest = str(Digest.of(body, algorithm))
        if wanted is not None and str(wanted) != digest:
            raise RegistryError(
                ErrorCode.DIGEST_INVALID,
                "manifest digest does not match its content",
                detail={"digest": str(wanted)},
            )
        record = _record_of(digest, manifest, len(body))
        try:
            await self.meta.check_quota(repository, digest, len(body))
        except QuotaExceeded as exc:
            raise quota_refusal(exc) from None
        async with self.lock.publishing():
            pending = Pending()
            try:
                await self._store(repository, record, body, manifest, tags, may_read, pending)
            except Exception:
                # Bytes published for a push that stored nothing are the collector's to review:
                # never deleted here, where another push may be linking the same digest.
                if pending.published:
                    await self.meta.enqueue_for_review(pending.published)
                raise
        self.cache.put(digest, body)
        return PutResult(digest, record.subject, tuple(dict.fromkeys(tags)))

    async def _store(
        self,
        repository: str,
        record: ManifestRecord,
        body: bytes,
        manifest: ParsedManifest,
        tags: list[str],
        may_read: ReadCheck | None,
        pending: Pending,
    ) -> None:
        """Check what the manifest names, publish its bytes and record it with its links and
        tags in one transaction; what it published on the way is noted in `pending`."""
        references = await self._check_references(repository, manifest, may_read, pending)
        await self.blobs.put(record.digest, body)
        pending.published.append(record.digest)
        try:
            pushed = list(dict.fromkeys(tags))
            await self.meta.put_manifest(
                repository,
                record,
                references,
                pushed,
                children_required=True,
                immutable_checked=True,
                links=pending.links,
                audit=self.audit.entry(
                    "manifest.push",
                    f"{repository}@{record.digest}",
                    repository=repository,
                    detail={"digest": record.digest, "tags": pushed},
                ),
            )
        except (ChildrenMissing, TagImmutable, QuotaExceeded) as exc:
            raise _refusal(exc) from None

    async def store_fetched(
        self,
        repository: str,
        body: bytes,
        media_type: str | None,
        tag: str | None,
        expected: str | None = None,
    ) -> ManifestRecord:
        """Keep a manifest fetched from an upstream registry. Its blobs and children are not
        required to be here yet: a pull-through cache fetches them when asked."""
        manifest = parse_manifest(body, media_type)
        wanted = Digest.parse(expected) if expected else None
        digest = str(Digest.of(body, wanted.algorithm if wanted else "sha256"))
        if wanted is not None and str(wanted) != digest:
            raise RegistryError(
                ErrorCode.DIGEST_INVALID,
                "the upstream sent a manifest that does not match its digest",
                detail={"digest": str(wanted)},
            )
        references = [Reference(d.digest, "blob") for d in manifest.blobs if not d.is_foreign]
        references += [
            Reference(d, "manifest") for d in dict.fromkeys(c.digest for c in manifest.children)
        ]
        record = _record_of(digest, manifest, len(body))
        try:
            # A cache whose namespace has a quota keeps nothing past it (README: quotas).
            await self.meta.check_quota(repository, digest, len(body))
            async with self.lock.publishing():
                await self.blobs.put(digest, body)
                try:
                    await self.meta.put_manifest(
                        repository, record, references, [tag] if tag else []
                    )
                except QuotaExceeded:
                    await self.meta.enqueue_for_review([digest])  # as for a push: see `put`
                    raise
        except QuotaExceeded as exc:
            raise quota_refusal(exc) from None
        self.cache.put(digest, body)
        return record

    async def _check_references(
        self,
        repository: str,
        manifest: ParsedManifest,
        may_read: ReadCheck | None,
        pending: Pending,
    ) -> list[Reference]:
        references: list[Reference] = []
        for descriptor in manifest.blobs:
            if descriptor.is_foreign:
                continue
            await self._ensure_blob(repository, descriptor, may_read, pending)
            references.append(Reference(descriptor.digest, "blob"))
        children = [d.digest for d in manifest.children]
        missing = await self.meta.missing_manifests(repository, list(dict.fromkeys(children)))
        if missing:
            raise _unknown_children(missing)
        references.extend(Reference(d, "manifest") for d in dict.fromkeys(children))
        return references

    async def _ensure_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        may_read: ReadCheck | None,
        pending: Pending,
    ) -> None:
        """The blob must be in the repository, or stored elsewhere (mounted), or embedded. A
        mount or an embedded blob is linked with the manifest (`pending`), not before it."""
        size = await self.meta.linked_blob_size(repository, descriptor.digest)
        if size is None:
            size = await readable_blob_size(self.meta, descriptor.digest, None, may_read)
            if size is not None and await self.blobs.stat(descriptor.digest) is not None:
                pending.links.append((descriptor.digest, size))
            elif descriptor.data is not None:
                await self.blobs.put(descriptor.digest, descriptor.data)
                size = len(descriptor.data)
                pending.published.append(descriptor.digest)
                pending.links.append((descriptor.digest, size))
            else:
                raise RegistryError(
                    ErrorCode.MANIFEST_BLOB_UNKNOWN, detail={"digest": descriptor.digest}
                )
        if size != descriptor.size:
            raise RegistryError(
                ErrorCode.MANIFEST_INVALID,
                f"descriptor of {descriptor.digest} says {descriptor.size} bytes, blob has {size}",
            )

    # -- pull ----------------------------------------------------------------------------
    async def resolve(self, repository: str, reference: str) -> ManifestRecord:
        tag, digest = parse_reference(reference, lookup=True)
        if digest is not None:
            record = await self.meta.get_manifest(repository, str(digest))
        else:
            record = await self.meta.resolve_tag(repository, tag or "")
        if record is None:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": reference[:200]})
        return record

    async def content(self, record: ManifestRecord) -> bytes:
        data = self.cache.get(record.digest)
        if data is None:
            data = await self.blobs.get(record.digest)
            if data is None:
                raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"digest": record.digest})
            self.cache.put(record.digest, data)
        return data

    # -- delete --------------------------------------------------------------------------
    async def delete(self, repository: str, reference: str, *, force: bool = False) -> None:
        """By digest: the manifest and its tags, refused while an index of the repository
        names it as a child (a forced delete leaves that index broken). By tag: only the tag.
        Either is refused when a tag it would remove is immutable (even forced)."""
        tag, digest = parse_reference(reference, lookup=True)
        try:
            # With replicas sharing PostgreSQL, on the content lock's shared side, as a push:
            # the collector's batches hold it exclusively while they decide, and they write
            # the same rows (a repository emptied moves the catalog on), so a delete waits for
            # a batch instead of being rolled back by every one of them in turn. SQLite's one
            # writer already puts the two one after the other.
            async with self._conflict_free():
                if digest is not None:
                    deleted = await self.meta.delete_manifest(
                        repository,
                        str(digest),
                        unless_in_index=not force,
                        immutable_checked=True,
                        audit=self.audit.entry(
                            "manifest.delete",
                            f"{repository}@{digest}",
                            repository=repository,
                            detail={"forced": True} if force else None,
                        ),
                    )
                else:
                    deleted = await self.meta.delete_tag(
                        repository,
                        tag or "",
                        immutable_checked=True,
                        audit=self.audit.entry(
                            "tag.delete", f"{repository}:{tag}", repository=repository
                        ),
                    )
        except ManifestInUse as exc:
            raise _in_use(str(digest), exc.indexes) from None
        except TagImmutable as exc:
            raise refusal(exc) from None
        if not deleted:
            raise RegistryError(ErrorCode.MANIFEST_UNKNOWN, detail={"reference": reference[:200]})

    def _conflict_free(self) -> contextlib.AbstractAsyncContextManager[None]:
        return self.lock.publishing() if self.meta.shared else NoLock().publishing()

    # -- referrers -----------------------------------------------------------------------
    async def referrers(
        self, repository: str, subject: str, artifact_type: str | None
    ) -> Referrers:
        subject = str(Digest.parse(subject))
        descriptors: dict[str, dict] = {}
        for record in await self.meta.referrers(repository, subject):
            descriptors[record.digest] = _descriptor_of(record)
        for entry in await self._fallback_tag_entries(repository, subject):
            descriptors.setdefault(entry["digest"], entry)
        entries = list(descriptors.values())
        if artifact_type is not None:
            entries = [d for d in entries if d.get("artifactType") == artifact_type]
        index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries}
        return Referrers(
            json.dumps(index, separators=(",", ":")).encode(), artifact_type is not None
        )

    async def _fallback_tag_entries(self, repository: str, subject: str) -> list[dict]:
        """Entries of the referrers tag (`sha256-<hex>`, `sha512-<64 of its hex>`) that clients
        without the referrers API maintain."""
        record = await self.meta.resolve_tag(repository, referrers_tag(subject))
        if record is None or record.media_type != mt.OCI_INDEX:
            return []
        try:
            doc = jsontext.loads(await self.content(record))
        except (ValueError, RegistryError):
            return []
        return [m for m in doc.get("manifests", []) if isinstance(m, dict) and "digest" in m]


@dataclass(slots=True)
class Pending:
    """What a manifest push has done before its transaction: bytes it published, and blobs
    (digest, size) that transaction is to link (mounted from elsewhere, or embedded)."""

    published: list[str] = field(default_factory=list)
    links: list[tuple[str, int]] = field(default_factory=list)


def _refusal(exc: ChildrenMissing | TagImmutable | QuotaExceeded) -> RegistryError:
    if isinstance(exc, ChildrenMissing):
        return _unknown_children(exc.digests)
    if isinstance(exc, TagImmutable):
        return refusal(exc)
    return quota_refusal(exc)


def _unknown_children(missing: list[str]) -> RegistryError:
    return RegistryError(
        ErrorCode.MANIFEST_CHILD_UNKNOWN,
        "index refers to unknown manifests",
        detail={"digests": missing[:20]},
    )


def _in_use(digest: str, indexes: list[str]) -> RegistryError:
    named = ", ".join(indexes[:3]) + (f" and {len(indexes) - 3} more" if len(indexes) > 3 else "")
    return RegistryError(
        ErrorCode.MANIFEST_IN_USE,
        f"manifest {digest} is a child of index {named} in this repository; delete the "
        "index first, or force the deletion (?force=true)",
        detail={"digest": digest, "indexes": indexes[:20]},
    )


def _record_of(digest: str, manifest: ParsedManifest, size: int) -> ManifestRecord:
    return ManifestRecord(
        digest=digest,
        media_type=manifest.media_type,
        size=size,
        artifact_type=manifest.referrer_artifact_type,
        subject=manifest.subject.digest if manifest.subject else None,
        annotations=manifest.annotations,
    )


def _descriptor_of(record: ManifestRecord) -> dict:
    descriptor: dict = {
        "mediaType": record.media_type,
        "digest": record.digest,
        "size": record.size,
    }
    if record.artifact_type:
        descriptor["artifactType"] = record.artifact_type
    if record.annotations:
        descriptor["annotations"] = record.annotations
    return descriptor
