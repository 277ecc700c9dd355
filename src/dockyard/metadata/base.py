"""The interface every metadata store implements, one Protocol per aggregate.

It records which repository links which blob, which manifest references which blob or child
manifest, and which tag points where; that graph is what garbage collection walks. Each
aggregate (blob links, uploads, manifests and tags, listings, the cache index, ...) is a
Protocol of its own, and `MetadataStore` is all of them together with the store's lifecycle.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dockyard.metadata.accounts import AccountStore
    from dockyard.metadata.advisory_lock import AdvisoryContentLock
    from dockyard.metadata.diagnosis import SchemaState
    from dockyard.metadata.runner import TransactionObserver


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: str
    media_type: str
    size: int
    artifact_type: str | None = None
    subject: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Reference:
    """An edge from a manifest to a blob (`kind="blob"`) or a child manifest (`"manifest"`)."""

    target: str
    kind: str


class ManifestInUse(Exception):
    """The manifest is a child of these indexes of its repository; nothing was deleted."""

    def __init__(self, indexes: list[str]) -> None:
        super().__init__(", ".join(indexes))
        self.indexes = indexes


class ChildrenMissing(Exception):
    """The index names child manifests its repository does not hold; nothing was stored."""

    def __init__(self, digests: list[str]) -> None:
        super().__init__(", ".join(digests))
        self.digests = digests


class TagImmutable(Exception):
    """The tag matches an immutability rule and would move or go; nothing was changed."""

    def __init__(self, tag: str, pattern: str, scope: str) -> None:
        super().__init__(f"{tag} ({pattern} on {scope})")
        self.tag = tag
        self.pattern = pattern
        self.scope = scope


class QuotaExceeded(Exception):
    """Holding the content would take the namespace past its quota; nothing was stored."""

    def __init__(self, namespace: str, would_use: int, limit: int) -> None:
        super().__init__(f"{would_use} of {limit} bytes in {namespace}")
        self.namespace = namespace
        self.would_use = would_use
        self.limit = limit


@dataclass(frozen=True, slots=True)
class NamespaceQuota:
    namespace: str
    limit: int | None  # bytes; None: no quota
    used: int  # deduplicated bytes the namespace holds


@dataclass(frozen=True, slots=True)
class TagRule:
    """Tags matching `pattern` in `scope` (a namespace, or one repository) never move."""

    scope: str
    pattern: str
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class SignaturePolicy:
    """Manifests of the repositories in `scope` are served only when signed by one of
    `public_keys` (cosign, PEM) or under one of `roots` (notation, PEM certificates); `mode`
    is `enforce`, `warn` or `off`. `version` changes on every edit."""

    scope: str
    mode: str
    public_keys: tuple[str, ...]
    roots: tuple[str, ...]
    version: str
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Which tags of the repositories in `scope` expire: see `schema.retention_policies`."""

    scope: str
    keep_last: int | None = None
    older_than_seconds: int | None = None
    keep_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class PushedTag:
    repository: str
    tag: str
    digest: str
    pushed_at: float  # when the tag was last pointed where it points


@dataclass(frozen=True, slots=True)
class CacheUsage:
    repositories: int
    manifests: int
    blobs: int
    bytes: int


@dataclass(frozen=True, slots=True)
class RemovedRepository:
    """What deleting a repository took away: counts for a report, and the uploads in flight
    whose bytes the blob store may drop."""

    tags: int
    manifests: int
    blob_links: int
    uploads: list[str]


@dataclass(frozen=True, slots=True)
class RepositoryUsage:
    """A repository's stored content: each blob and manifest it holds, once."""

    name: str
    blobs: int
    bytes: int


@dataclass(frozen=True, slots=True)
class NamespaceUsage:
    """A namespace's stored content, each blob once however many of its repositories hold
    it; `shared_bytes` of it are held by another namespace too."""

    name: str
    repositories: int
    blobs: int
    bytes: int
    shared_bytes: int


@dataclass(frozen=True, slots=True)
class RegistryTotal:
    """Every blob the registry records, each once (including what awaits collection)."""

    blobs: int
    bytes: int


@dataclass(frozen=True, slots=True)
class RepositoryInfo:
    """What a repository's owners wrote about it: a short description and a Markdown README."""

    description: str = ""
    readme: str = ""
    updated_at: float | None = None  # None: never written


@dataclass(frozen=True, slots=True)
class PagedTag:
    tag: str
    pushed_at: float  # when the tag was last pointed where it points
    manifest: ManifestRecord


@dataclass(frozen=True, slots=True)
class TagChange:
    digest: str | None  # where the tag pointed from then on; None: it was deleted
    at: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One record of the audit log (`schema.audit_log`); `id` orders them and pages them."""

    at: float
    action: str
    object: str
    account: str | None = None
    token: str | None = None
    address: str | None = None
    repository: str | None = None
    detail: dict[str, Any] | None = None
    id: int = 0


# The audit record a change writes in its own transaction: an entry (left out when the change
# answers False: nothing changed), or a function of the change's answer giving the entry (None:
# nothing recorded). Computed inside the transaction: a failure there undoes the change too.
AuditOf = AuditEntry | Callable[[Any], "AuditEntry | None"] | None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which records to read: each field narrows, None leaves it open. `before`: ids below it
    (the cursor of the previous page). Newest first."""

    since: float | None = None
    until: float | None = None
    account: str | None = None
    repository: str | None = None
    action: str | None = None
    before: int | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class TagPage:
    total: int  # tags matching the filter, on every page
    tags: list[PagedTag]
    last_pushed: float | None  # the newest push of any tag of the repository


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    repository: str
    size: int
    created_at: float
    updated_at: float
    # The accepted pieces, space-separated, for blob stores that keep one object per chunk
    # (S3); None where the store writes one file.
    pieces: str | None = None


@dataclass(frozen=True, slots=True)
class ContentGraph:
    """Every edge a consistency check follows, read in one snapshot."""

    links: list[tuple[str, str]]  # (repository, blob digest)
    manifests: list[tuple[str, str]]  # (repository, manifest digest)
    references: list[tuple[str, str, str, str]]  # (repository, manifest, target, kind)
    tags: list[tuple[str, str, str]]  # (repository, tag, manifest digest)


@dataclass(slots=True)
class Collected:
    """What one review of the garbage collector's queue dropped (or would drop)."""

    # (digest, size) now unneeded; size None: no record (its bytes, if any, are strays)
    blobs: list[tuple[str, int | None]] = field(default_factory=list)
    links: int = 0  # repository links no manifest of their repository used


@dataclass(frozen=True, slots=True)
class WebhookSpec:
    """What an administrator says of a webhook: where, in which format, which events."""

    url: str
    format: str  # distribution | cloudevents
    repositories: str  # a glob over repository names
    actions: tuple[str, ...]  # push, delete, pull


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    url: str
    format: str
    repositories: str
    actions: tuple[str, ...]
    secret: str
    created_at: float
    pending: int  # events waiting in the outbox
    delivered: int
    attempts: int  # failed attempts at the head of the queue since the last success
    next_attempt_at: float
    last_status: int | None
    last_error: str | None
    last_attempt_at: float | None
    last_success_at: float | None


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    row: int  # orders a webhook's events
    event_id: str  # the same at every attempt, for receivers to drop duplicates
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    first_event: str
    events: int
    attempt: int
    status: int | None
    error: str | None
    at: float


class BlobLinks(Protocol):
    async def blob_size(self, digest: str) -> int | None:
        """Size of a blob known anywhere in the registry."""

    async def linked_blob_size(self, repository: str, digest: str) -> int | None:
        """Size of a blob if `repository` links it."""

    async def link_blob(self, repository: str, digest: str, size: int) -> None:
        """Raises `QuotaExceeded` (and links nothing) past the namespace's quota."""

    async def unlink_blob(self, repository: str, digest: str) -> bool: ...

    async def repositories_linking(self, digest: str, limit: int) -> list[str]:
        """Some repositories that link the blob (for mounts without a named source)."""

    async def unreferenced_blobs(self) -> list[str]:
        """Blobs nothing references, sorted: no repository links them, no manifest is stored
        under their digest and none names them. What garbage collection may remove."""

    async def all_blob_digests(self) -> list[str]:
        """Every blob the registry records, sorted (what `dockyard migrate` copies)."""

    async def forget_blob_records(self, digests: list[str]) -> None:
        """Drop the blobs' records and every repository's link to them (their bytes were
        found corrupt and set aside): the registry then answers BLOB_UNKNOWN for them."""


class Uploads(Protocol):
    async def create_upload(self, upload_id: str, repository: str, now: float) -> None: ...

    async def get_upload(self, upload_id: str) -> UploadRecord | None: ...

    async def advance_upload(
        self, upload_id: str, old: int, new: int, now: float, pieces: str | None = None
    ) -> bool:
        """Move an upload's size from `old` to `new` and record its `pieces` as they now are;
        False if someone else moved it first."""

    async def delete_upload(self, upload_id: str) -> None: ...

    async def complete_upload(
        self, upload_id: str, repository: str, digest: str, size: int
    ) -> None:
        """`link_blob` and `delete_upload` in one transaction."""

    async def expired_uploads(self, before: float) -> list[UploadRecord]: ...


class Manifests(Protocol):
    """Manifests and the tags that point at them."""

    async def put_manifest(
        self,
        repository: str,
        record: ManifestRecord,
        references: list[Reference],
        tags: list[str],
        *,
        children_required: bool = False,
        immutable_checked: bool = False,
        links: Sequence[tuple[str, int]] = (),
        audit: AuditEntry | None = None,
    ) -> None:
        """Store a manifest, its edges and its tags in one transaction (with `audit`, its
        audit record too). `links`: blobs
        (digest, size) to link into the repository first, in that transaction, so a manifest
        refused (by its quota, say) links nothing either. `children_required`:
        raise `ChildrenMissing` unless every child manifest is in the repository, checked in
        that same transaction (a child deleted meanwhile cannot slip through).
        `immutable_checked`: raise `TagImmutable` when a tag matching a rule of `TagRules`
        points at another manifest, read in that transaction (of two concurrent pushes to a
        new immutable tag, one wins and the other is refused)."""

    async def get_manifest(self, repository: str, digest: str) -> ManifestRecord | None: ...

    async def resolve_tag(self, repository: str, tag: str) -> ManifestRecord | None: ...

    async def missing_manifests(self, repository: str, digests: list[str]) -> list[str]:
        """Those of `digests` that `repository` holds no manifest for."""

    async def delete_manifest(
        self,
        repository: str,
        digest: str,
        *,
        unless_in_index: bool = False,
        immutable_checked: bool = False,
        audit: AuditEntry | None = None,
    ) -> bool:
        """Delete a manifest and every tag pointing at it (and record `audit` in the same
        transaction when it did). `unless_in_index`: raise
        `ManifestInUse` instead when an index of the same repository names it as a child.
        `immutable_checked`: raise `TagImmutable` when one of its tags matches a rule."""

    async def delete_tag(
        self,
        repository: str,
        tag: str,
        *,
        immutable_checked: bool = False,
        audit: AuditEntry | None = None,
    ) -> bool:
        """`immutable_checked`: raise `TagImmutable` when the tag exists and matches a rule;
        `audit` is recorded in the same transaction when the tag was deleted."""

    async def referrers(self, repository: str, subject: str) -> list[ManifestRecord]: ...

    async def untagged_manifests(self) -> list[tuple[str, str]]:
        """(repository, digest) of every manifest no tag of its repository points at and no
        index of its repository names as a child, sorted. Manifests that refer to a subject
        (signatures, SBOMs) are listed too when untagged: whether they go with their subject
        is for garbage collection to decide."""


class Repositories(Protocol):
    """Whole repositories: deleting one, and what each one and each namespace stores."""

    async def delete_repository(
        self, repository: str, *, audit: AuditOf = None
    ) -> RemovedRepository | None:
        """Its tags, manifests, blob links, uploads, settings, description and cache index
        rows, in one transaction; None when it held nothing. Its bytes are left for garbage
        collection."""

    async def repository_usage(self, namespace: str | None) -> list[RepositoryUsage]:
        """Per repository (those of `namespace`, or all), sorted by name."""

    async def namespace_usage(self, namespace: str | None) -> list[NamespaceUsage]:
        """Per namespace (`namespace` alone, or all), deduplicated, sorted by name."""

    async def registry_total(self) -> RegistryTotal: ...


class RepositoryDescriptions(Protocol):
    """The description and README of repositories with content."""

    async def repository_info(self, repository: str) -> RepositoryInfo | None:
        """None when the repository holds nothing (as the catalog has it)."""

    async def set_repository_info(
        self, repository: str, description: str | None, readme: str | None, now: float
    ) -> RepositoryInfo | None:
        """Replace the fields given (None: leave it), in one transaction; the result, or None
        (nothing written) when the repository holds nothing."""


class TagPages(Protocol):
    """A repository's tags a page at a time, with their manifests' records."""

    async def tag_history(self, repository: str, tag: str) -> list[TagChange]:
        """Where the tag pointed and when, newest first (the last entries kept: see
        `schema.tag_history`); empty when it never existed."""
        ...

    async def tags_in_order(
        self, repository: str, last: str | None, limit: int
    ) -> list[PagedTag] | None:
        """`limit` tags after `last` in byte order, each with when it was last pointed where
        it points; None when no repository has the name."""
        ...

    async def tag_page(
        self, repository: str, contains: str, offset: int, limit: int
    ) -> TagPage | None:
        """Tags whose name contains `contains` (ignoring ASCII case), most recently pushed
        first then by name, `limit` of them from `offset`; None when no repository has the
        name."""

    async def manifests_by_digest(
        self, repository: str, digests: list[str]
    ) -> dict[str, ManifestRecord]:
        """The records of those of `digests` the repository holds."""

    async def tags_of(self, repository: str, digest: str) -> list[str]:
        """The tags pointing at the manifest, sorted."""


class TagRules(Protocol):
    """Immutability rules, by namespace or repository."""

    async def add_tag_rule(
        self, scope: str, pattern: str, now: float, *, audit: AuditOf = None
    ) -> bool:
        """False when the rule was already there."""

    async def remove_tag_rule(self, scope: str, pattern: str, *, audit: AuditOf = None) -> bool: ...

    async def tag_rules(self, scope: str) -> list[TagRule]:
        """The rules of `scope` and, for a namespace, of each of its repositories, sorted."""


class RetentionPolicies(Protocol):
    async def set_retention_policy(
        self, policy: RetentionPolicy, now: float, *, audit: AuditOf = None
    ) -> None: ...

    async def remove_retention_policy(self, scope: str, *, audit: AuditOf = None) -> bool: ...

    async def retention_policies(self, scope: str | None = None) -> list[RetentionPolicy]:
        """Every policy, or those of `scope` and (for a namespace) its repositories; sorted."""

    async def pushed_tags(self, scope: str) -> list[PushedTag]:
        """Every tag of the repository `scope`, or of every repository of the namespace
        `scope`, with when it was pushed."""

    async def expire_tag(self, repository: str, tag: str, pushed_at: float) -> bool:
        """Delete the tag if it was not pushed again since `pushed_at`, unless a rule makes it
        immutable (`TagImmutable`); False when it moved or is gone."""


class Quotas(Protocol):
    """Storage quotas per namespace, checked by `link_blob`, `complete_upload` and
    `put_manifest` (which raise `QuotaExceeded`) against counters kept with the links."""

    async def set_quota(self, namespace: str, limit: int | None, *, audit: AuditOf = None) -> None:
        """`limit` in bytes; None removes the quota."""

    async def quota(self, namespace: str) -> NamespaceQuota: ...

    async def check_quota(self, repository: str, digest: str, size: int) -> None:
        """Raise `QuotaExceeded` if holding `digest` would take the namespace past its quota
        now: a cheap look before publishing bytes; the write itself checks again."""

    async def quota_usage(self, *, scan: bool = False) -> dict[str, int]:
        """Deduplicated bytes per namespace holding any: from the counters, or (`scan`) from
        the links and manifests themselves (what the counters must always equal)."""


class Catalog(Protocol):
    """Listings: repositories with content, and each repository's tags."""

    async def repository_exists(self, repository: str) -> bool: ...

    async def has_content(self, repository: str) -> bool:
        """Whether the repository holds a manifest or a blob (what the catalog lists)."""

    async def list_tags(self, repository: str, limit: int | None, last: str | None) -> list[str]:
        """Tags after `last` in byte order, `limit` of them or every one; [] when unknown."""

    async def tags_page(
        self, repository: str, limit: int, last: str | None
    ) -> tuple[str, ...] | None:
        """Up to `limit` tags after `last` in byte order, read from the index where the page
        starts; None when the repository has no content (unknown to `/tags/list`). The same
        page may be answered from memory until the next commit (a tuple: shared)."""

    async def list_repositories(self, limit: int | None, last: str | None) -> tuple[str, ...]:
        """Up to `limit` (None: every) repository with content after `last`, in byte order,
        read from the name index where the page starts; remembered as `tags_page` is."""

    async def last_pushes(self) -> dict[str, float]:
        """When each repository holding a manifest last had one stored or a tag moved (for
        listings sorted by last push); repositories without a manifest are absent."""


class CacheIndex(Protocol):
    """What the pull-through cache records beyond ordinary content."""

    async def tag_checked_at(self, repository: str, tag: str) -> float | None:
        """When the upstream last confirmed this cached tag; None if never."""

    async def mark_tag_checked(self, repository: str, tag: str, now: float) -> None: ...

    async def cache_usage(self, prefixes: list[str]) -> CacheUsage:
        """What the cached repositories (names under `prefixes`) hold on their own."""

    async def cached_manifests(self, prefixes: list[str]) -> list[tuple[str, str]]:
        """(repository, digest) of every manifest in a cached repository."""

    async def unneeded_cached_blobs(self, prefixes: list[str]) -> list[str]:
        """Blobs that only cached repositories link and no manifest anywhere needs, and the
        bytes of manifests no repository holds any more: what a cache prune may remove."""

    async def forget_blobs(self, prefixes: list[str], digests: list[str]) -> list[str]:
        """Drop the records of those `digests` that are still unneeded, in one transaction;
        returns the ones dropped (anything linked or referenced since stays)."""


class Collection(Protocol):
    """The garbage collector's review queue and its decisions (`metadata/collection.py`)."""

    async def enqueue_for_review(self, digests: list[str]) -> None:
        """Have the collector look at `digests` after the grace delay: for a change that drops
        references outside this store's own methods (they queue what they drop)."""

    async def due_for_review(self, cutoff: float, limit: int, after: str = "") -> list[str]:
        """Queued digests whose last change is older than `cutoff`, in digest order from
        after `after` (one page of the queue)."""

    async def queued_since(self, since: float, cutoff: float) -> tuple[float, float] | None:
        """Of the rows queued after `since`: when the earliest was queued (the collector sleeps
        until it is due) and the latest of those queued before `cutoff` (`since` when none
        was); None when no row was."""

    async def review_queue_length(self) -> int: ...

    async def collect_blobs(
        self, digests: list[str], cutoff: float, keep: list[str], *, dry_run: bool = False
    ) -> Collected:
        """In one transaction, for each of `digests` still due: drop its links that no manifest
        of their repository uses and that are older than `cutoff` (outside the repositories
        under `keep`), then its record if nothing else refers to it. The bytes are left to
        the caller, who holds the content lock (sweeping) until they are gone, then calls
        `reviewed`."""

    async def reviewed(self, digests: list[str], cutoff: float) -> None:
        """Take collected `digests` off the queue once their bytes are gone (unless queued
        again after `cutoff`)."""

    async def collect_next(
        self, cutoff: float, limit: int, after: str, keep: list[str], reviewed: list[str]
    ) -> tuple[list[str], Collected]:
        """One batch in one transaction: `reviewed` (the last batch's, whose bytes are gone)
        off the queue, then the next `limit` due digests after `after` picked and collected
        as `collect_blobs` does. Returns the digests picked and what went."""

    async def untagged_due(
        self, cutoff: float, keep: list[str], limit: int, after: tuple[str, str] = ("", "")
    ) -> list[tuple[str, str]]:
        """(repository, digest) of manifests no tag, index or held subject keeps, older than
        `cutoff`, outside the repositories under `keep`, in order from after `after`."""

    async def collect_untagged(
        self,
        manifests: list[tuple[str, str]],
        cutoff: float,
        keep: list[str],
        *,
        dry_run: bool = False,
    ) -> list[tuple[str, str, int]]:
        """Delete those of `manifests` still collectable, checked again in the transaction;
        their content is queued for review. Returns (repository, digest, size) of each."""


class ContentGraphs(Protocol):
    async def content_graph(self) -> ContentGraph:
        """Every edge, read in one snapshot, for consistency checks."""


class SignaturePolicies(Protocol):
    async def set_signature_policy(self, policy: SignaturePolicy, *, audit: AuditOf = None) -> None:
        """Store it, replacing the scope's former policy."""

    async def remove_signature_policy(self, scope: str, *, audit: AuditOf = None) -> bool: ...

    async def signature_policies(self, scope: str) -> list[SignaturePolicy]:
        """The policy of `scope` and, for a namespace, of each of its repositories, sorted."""

    async def signature_policy_for(self, repository: str) -> SignaturePolicy | None:
        """The policy a repository is under: its own, else its namespace's."""

    async def signature_policy_and_manifest(
        self, repository: str, reference: str | None
    ) -> tuple[SignaturePolicy | None, str | None]:
        """The policy a repository is under and, when there is one and `reference` (a tag or
        a digest) is given, the digest it resolves to there (None: it does not)."""

    async def indexes_listing(self, repository: str, digest: str) -> list[ManifestRecord]:
        """The indexes of the repository naming the manifest as a child, newest first."""


class AuditLog(Protocol):
    async def record_audit(self, entry: AuditEntry) -> None:
        """Append a record in its own transaction."""

    async def audit_entries(self, query: AuditQuery) -> list[AuditEntry]:
        """The records `query` selects, newest first, at most `query.limit`."""

    async def prune_audit(self, older_than: float) -> int:
        """Remove the records made before `older_than`; how many were removed."""


class Transfer(Protocol):
    """Every row out of one database and into another (`dockyard migrate`)."""

    async def export_rows(self) -> dict[str, list[dict[str, Any]]]: ...

    async def import_rows(self, rows: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
        """All rows in one transaction, keys kept; refuses a database that holds data."""


class Secrets(Protocol):
    async def secret(self, name: str, make: Callable[[], str]) -> str:
        """A value every replica agrees on; the first caller's `make()` wins."""


class Events(Protocol):
    """The outbox of events and the webhooks it is delivered to (`metadata/events.py`)."""

    async def record_events(
        self, events: Sequence[tuple[str, str, dict[str, Any]]], now: float
    ) -> int: ...

    async def add_webhook(self, spec: WebhookSpec, secret: str, now: float) -> int: ...

    async def remove_webhook(self, hook_id: int) -> bool: ...

    async def webhooks(self) -> list[Webhook]: ...

    async def webhook(self, hook_id: int) -> Webhook | None: ...

    async def due_webhooks(self, owner: str, now: float) -> list[int]: ...

    async def claim_webhook(self, hook_id: int, owner: str, now: float, until: float) -> bool: ...

    async def release_webhook(self, hook_id: int, owner: str) -> None: ...

    async def pending_events(self, hook_id: int, limit: int) -> list[OutboxEvent]: ...

    async def events_delivered(
        self, hook_id: int, owner: str, events: Sequence[OutboxEvent], status: int, now: float
    ) -> bool: ...

    async def events_failed(
        self,
        hook_id: int,
        owner: str,
        events: Sequence[OutboxEvent],
        status: int | None,
        error: str,
        now: float,
        retry_in: Callable[[int], float],
    ) -> int: ...

    async def webhook_deliveries(self, hook_id: int, limit: int) -> list[WebhookDelivery]: ...


class MetadataStore(
    BlobLinks,
    Events,
    Uploads,
    Manifests,
    TagRules,
    RetentionPolicies,
    SignaturePolicies,
    Quotas,
    Catalog,
    Repositories,
    RepositoryDescriptions,
    TagPages,
    CacheIndex,
    Collection,
    ContentGraphs,
    AuditLog,
    Transfer,
    Secrets,
    Protocol,
):
    """Every aggregate, the accounts kept in the same database, and the store's lifecycle."""

    @property
    def accounts(self) -> AccountStore: ...

    @property
    def shared(self) -> bool:
        """True when several replicas may use this store at once."""

    async def migrate(self) -> None:
        """Bring a shared database's schema up to date (SQLite is migrated when opened)."""

    async def has_schema(self) -> bool:
        """Whether the database was ever migrated: an admin command can then tell a registry
        from an empty or mistyped database."""

    def version(self) -> Hashable | None:
        """A value read now that stays equal only while nothing in the store changed (on
        SQLite, the wal-index header, or `PRAGMA data_version` of this thread's connection);
        None on a store that cannot tell cheaply (PostgreSQL)."""

    def observe_transactions(self, observer: TransactionObserver) -> None:
        """Tell `observer` of every transaction's time and retries (the server's metrics)."""

    async def schema_state(self) -> SchemaState:
        """The schema's revision, the newest one this version knows and the database's
        clock, for `dockyard doctor`; raises when the database cannot be reached."""

    def shared_content_lock(self) -> AdvisoryContentLock | None:
        """The content lock every replica of a shared database holds, or None when the
        database is one node's own (the data folder's file lock does then)."""

    async def close(self) -> None: ...
