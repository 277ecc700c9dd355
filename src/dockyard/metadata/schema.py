"""Tables of the metadata store, shared by every SQL dialect."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

# Byte-order comparison for names and tags on every dialect, so listings sort the same way.
NameText = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")

repositories = sa.Table(
    "repositories",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", NameText, nullable=False, unique=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

blobs = sa.Table(
    "blobs",
    metadata,
    sa.Column("digest", sa.String(200), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

repository_blobs = sa.Table(
    "repository_blobs",
    metadata,
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), primary_key=True),
    sa.Column("digest", sa.String(200), sa.ForeignKey("blobs.digest"), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_repository_blobs_digest", "digest"),
)

manifests = sa.Table(
    "manifests",
    metadata,
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), primary_key=True),
    sa.Column("digest", sa.String(200), primary_key=True),
    sa.Column("media_type", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("artifact_type", sa.String(255)),
    sa.Column("subject", sa.String(200)),
    sa.Column("annotations", sa.Text),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_manifests_subject", "repository_id", "subject"),
    sa.Index("ix_manifests_digest", "digest"),
)

manifest_references = sa.Table(
    "manifest_references",
    metadata,
    sa.Column("repository_id", sa.Integer, primary_key=True),
    sa.Column("manifest_digest", sa.String(200), primary_key=True),
    sa.Column("target_digest", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.ForeignKeyConstraint(
        ["repository_id", "manifest_digest"],
        ["manifests.repository_id", "manifests.digest"],
        ondelete="CASCADE",
    ),
    sa.Index("ix_manifest_references_target", "target_digest"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("repository_id", sa.Integer, primary_key=True),
    sa.Column("name", NameText, primary_key=True),
    sa.Column("manifest_digest", sa.String(200), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.ForeignKeyConstraint(
        ["repository_id", "manifest_digest"],
        ["manifests.repository_id", "manifests.digest"],
        ondelete="CASCADE",
    ),
    sa.Index("ix_tags_manifest", "repository_id", "manifest_digest"),
    # Revision 0010: a repository's page lists its tags last pushed first, a page at a time;
    # in this order a page is read where it starts, not sorted out of every tag.
    sa.Index("ix_tags_pushed", "repository_id", "updated_at"),
)

uploads = sa.Table(
    "uploads",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    # Added by revision 0006: which pieces an upload accepted, where the blob store keeps them.
    sa.Column("pieces", sa.Text, nullable=True),
    sa.Index("ix_uploads_updated", "updated_at"),
)

# -- accounts (revision 0002) -------------------------------------------------------------------
# Tables are created by the migration that introduced them from the definitions here; changing
# an existing table takes a new revision with explicit operations.

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", NameText, nullable=False, unique=True),
    sa.Column("kind", sa.String(8), nullable=False),  # "user" or "org"
    sa.Column("password_hash", sa.String(100)),
    sa.Column("is_admin", sa.Boolean, nullable=False, default=False),
    # Pull limit per window for this account: NULL = the configured default, -1 = unlimited.
    sa.Column("pull_limit", sa.Integer),
    # Visibility of new repositories in this namespace: NULL = the configured default.
    sa.Column("default_visibility", sa.String(8)),
    sa.Column("credentials_changed_at", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    # Revision 0007: when what the account may do last shrank (a membership removed or
    # lowered, admin rights taken away); access tokens minted before it are refused.
    sa.Column("grants_changed_at", sa.Float),
    # Revision 0011: when an administrator disabled the account (NULL: enabled). While set,
    # it signs in nowhere and its tokens and sessions are refused; enabling restores them.
    sa.Column("disabled_at", sa.Float),
)

memberships = sa.Table(
    "memberships",
    metadata,
    sa.Column(
        "org_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "user_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("role", sa.String(12), nullable=False),  # "owner", "maintainer" or "reader"
)

access_tokens = sa.Table(
    "access_tokens",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column(
        "account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scope", sa.String(8), nullable=False),  # "read", "write" or "delete"
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float),
    sa.Column("revoked_at", sa.Float),
    sa.Column("last_used_at", sa.Float),
    sa.UniqueConstraint("account_id", "name"),
)

repository_settings = sa.Table(
    "repository_settings",
    metadata,
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), primary_key=True),
    sa.Column("visibility", sa.String(8), nullable=False),  # "public" or "private"
)

# -- pull-through cache (revision 0003) -----------------------------------------------------------

cached_tags = sa.Table(
    "cached_tags",
    metadata,
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), primary_key=True),
    sa.Column("tag", NameText, primary_key=True),
    # When the upstream last confirmed (or gave) what this tag points at.
    sa.Column("checked_at", sa.Float, nullable=False),
)

# -- shared secrets (revision 0004) ---------------------------------------------------------------

secrets = sa.Table(
    "secrets",
    metadata,
    # e.g. "token-signing-key": one value every replica must agree on.
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# -- listing versions (revision 0005) ------------------------------------------------------------

tag_versions = sa.Table(
    "tag_versions",
    metadata,
    # No longer written or read: tag lists are paged from the `tags` index, nothing is kept
    # to check. (It moved on with every change to a repository's tags.) Left for a revision
    # that drops it; `dockyard migrate` still copies whatever rows it holds.
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)

listing_versions = sa.Table(
    "listing_versions",
    metadata,
    # "catalog": no longer written or read (the catalog is paged from the repositories'
    # name index; every first push moving this one row made them conflict on PostgreSQL).
    # "access": moves on with every change to accounts, memberships or access tokens, so
    # every process drops the sessions it remembers within a second (see auth.gate).
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
)

# -- garbage collection (revision 0008) ----------------------------------------------------------

gc_queue = sa.Table(
    "gc_queue",
    metadata,
    # A digest whose references changed (a link made or dropped, a manifest or tag deleted):
    # the collector reviews it once `queued_at` is older than the grace delay. Every change
    # adds a row and only the collector removes rows (those it reviewed), so a push never
    # updates or waits for a row another push or a collector holds: on a shared base layer,
    # one row per digest would be written by every push of the registry.
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("digest", sa.String(200), nullable=False),
    sa.Column("queued_at", sa.Float, nullable=False),
    sa.Index("ix_gc_queue_digest", "digest", "queued_at"),
    sa.Index("ix_gc_queue_queued_at", "queued_at"),
)

# -- policies (revision 0009) ----------------------------------------------------------------------

immutable_tag_rules = sa.Table(
    "immutable_tag_rules",
    metadata,
    # A namespace ("acme": all its repositories) or one repository ("acme/app"). Kept by name,
    # not repository id: a rule may be set before the repository has content.
    sa.Column("scope", NameText, primary_key=True),
    sa.Column("pattern", sa.String(128), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

namespace_quotas = sa.Table(
    "namespace_quotas",
    metadata,
    sa.Column("namespace", NameText, primary_key=True),
    sa.Column("limit_bytes", sa.BigInteger, nullable=False),
)

# Kept by database triggers (revision 0009) on every insert into and delete from
# `repository_blobs` and `manifests`, whichever code makes it, so they always equal a scan.
# A digest counts once per namespace however many of its repositories hold it: a row stands
# while anything of the namespace holds the digest. SQLite's triggers count the holders in
# `links`; PostgreSQL's (revision 0016) look for another holder when one goes instead, so a
# push of content the namespace already holds writes no row every such push would share.
namespace_blobs = sa.Table(
    "namespace_blobs",
    metadata,
    sa.Column("namespace", NameText, primary_key=True),
    sa.Column("digest", sa.String(200), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("links", sa.Integer, nullable=False),
)

# A namespace's bytes in 16 parts, by the last hex digit of the digest: pushes of different
# content in one namespace then update different rows instead of all waiting on one (and, on
# PostgreSQL, failing serialization on it). The usage is the sum of the parts.
namespace_usage = sa.Table(
    "namespace_usage",
    metadata,
    sa.Column("namespace", NameText, primary_key=True),
    sa.Column("shard", sa.String(1), primary_key=True),
    sa.Column("bytes", sa.BigInteger, nullable=False),
)

retention_policies = sa.Table(
    "retention_policies",
    metadata,
    # A namespace, or one repository (whose own policy then replaces its namespace's).
    sa.Column("scope", NameText, primary_key=True),
    # A tag goes when it is not among the `keep_last` most recently pushed of its repository
    # and (with `older_than_seconds`) was pushed longer ago than that; `keep_pattern` keeps
    # tags matching it whatever their age. NULL: that condition is not part of the policy.
    sa.Column("keep_last", sa.Integer),
    sa.Column("older_than_seconds", sa.BigInteger),
    sa.Column("keep_pattern", sa.String(128)),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# -- repository information (revision 0010) ------------------------------------------------------

repository_info = sa.Table(
    "repository_info",
    metadata,
    # What the repository's page shows about it, written by its owners and maintainers: a
    # one-line description and a README in Markdown (stored as written, rendered when shown).
    sa.Column("repository_id", sa.Integer, sa.ForeignKey("repositories.id"), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("readme", sa.Text, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# -- signature policies (revision 0012) ------------------------------------------------------------

signature_policies = sa.Table(
    "signature_policies",
    metadata,
    # A namespace, or one repository (whose own policy then replaces its namespace's). Kept by
    # name: a policy may be set before the repository has content.
    sa.Column("scope", NameText, primary_key=True),
    sa.Column("mode", sa.String(8), nullable=False),  # enforce | warn | off
    # JSON lists of PEM texts: cosign public keys, and notation trust-store root certificates.
    sa.Column("public_keys", sa.Text, nullable=False),
    sa.Column("roots", sa.Text, nullable=False),
    # New on every edit (a random token, so a policy removed and set again never repeats one):
    # verification results remembered under an old version are never read again.
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

# -- tag history (revision 0013) -----------------------------------------------------------------

# Where each tag pointed and when, newest last (`_dockyard/tag-history`): written by database
# triggers on `tags` (revision 0013), so every path that creates, moves or deletes a tag
# (pushes, deletes, retention, a repository's removal) is recorded in its own transaction.
# Keyed by the repository's name, not its id, so the history outlives the repository; the
# triggers keep the newest TAG_HISTORY_KEPT entries of each tag. `digest` NULL: deleted.
TAG_HISTORY_KEPT = 100

tag_history = sa.Table(
    "tag_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("repository", NameText, nullable=False),
    sa.Column("tag", NameText, nullable=False),
    sa.Column("digest", sa.String(200)),
    sa.Column("changed_at", sa.Float, nullable=False),
    sa.Index("ix_tag_history_tag", "repository", "tag", "id"),
)

# -- events and webhooks (revision 0014) ---------------------------------------------------------

# The webhooks an administrator configured. Pushes and deletes read this table in their own
# transaction to fan their events out (`event_outbox`); what changes as deliveries go on lives
# in `webhook_state`, so that delivering never conflicts with a push reading this table.
webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("format", sa.String(16), nullable=False),  # distribution | cloudevents
    sa.Column("repositories", sa.String(255), nullable=False),  # a glob over repository names
    sa.Column("actions", sa.String(64), nullable=False),  # comma-separated: push,delete,pull
    # Kept in clear: the registry must sign with it. Shown once, at creation.
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

# Where each webhook's delivery stands: which process holds it (a lease, so one process at a
# time sends to a webhook, in order, without a transaction held open across the request), when
# the head of its queue may be tried again, and the last attempt's outcome.
webhook_state = sa.Table(
    "webhook_state",
    metadata,
    sa.Column(
        "webhook_id",
        sa.Integer,
        sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False, server_default="0"),
    sa.Column("delivered", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text),
    sa.Column("last_attempt_at", sa.Float),
    sa.Column("last_success_at", sa.Float),
)

# The outbox: one row per event and webhook that wants it, written in the transaction of the
# change it reports and deleted once the webhook acknowledged it. `id` orders a webhook's
# events; `event_id` stays the same across retries, for receivers to drop duplicates.
event_outbox = sa.Table(
    "event_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "webhook_id", sa.Integer, sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("repository", NameText, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # the event's fields, as JSON
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Index("ix_event_outbox_webhook", "webhook_id", "id"),
)

# The newest attempts of each webhook (WEBHOOK_DELIVERIES_KEPT), for `dockyard webhook
# deliveries` and `/api/v1/webhooks/<id>/deliveries`.
WEBHOOK_DELIVERIES_KEPT = 50

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "webhook_id", sa.Integer, sa.ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("first_event", sa.String(36), nullable=False),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("status", sa.Integer),  # the HTTP status; NULL when none came back
    sa.Column("error", sa.Text),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_webhook_deliveries_webhook", "webhook_id", "id"),
)

# The audit log (revision 0015): who did what to which object, and when. `account` and `token`
# (an access token's name) are NULL when nobody signed in (a failed login) or an admin command
# on the data folder did it; `object` names what was changed (a repository, `repo:tag`, an
# account, a policy's scope), `repository` the repository it lies in, if any. `detail` is a
# small JSON object, never a secret. Rows older than `audit_retention_days` are pruned by the
# serving process.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("account", NameText),
    sa.Column("token", sa.String(255)),
    sa.Column("address", sa.String(64)),
    sa.Column("repository", NameText),  # set when the object lies in a repository
    sa.Column("object", sa.Text, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Index("ix_audit_log_at", "at"),
)
