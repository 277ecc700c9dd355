"""Signature policies by namespace or repository: stored, listed, and the one a repository is
under (its own, else its namespace's); and the indexes listing a manifest, whose signature
covers it too."""

from __future__ import annotations

import json
import re
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.audit import audited
from dockyard.metadata.base import AuditOf, ManifestRecord, SignaturePolicy
from dockyard.metadata.manifests import (
    MANIFEST_COLUMNS,
    get_manifest,
    manifest_record,
    resolve_tag,
)

POLICIES = t.signature_policies
DIGEST_REFERENCE = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
COLUMNS = (
    POLICIES.c.scope,
    POLICIES.c.mode,
    POLICIES.c.public_keys,
    POLICIES.c.roots,
    POLICIES.c.version,
    POLICIES.c.updated_at,
)

# Read on every manifest pull: built once. At most two rows, the namespace's and the
# repository's own.
POLICY_OF_REPOSITORY = sa.select(*COLUMNS).where(
    POLICIES.c.scope.in_([sa.bindparam("namespace"), sa.bindparam("repository")])
)


def _policy(row: Any) -> SignaturePolicy:
    return SignaturePolicy(
        scope=row[0],
        mode=row[1],
        public_keys=tuple(json.loads(row[2])),
        roots=tuple(json.loads(row[3])),
        version=row[4],
        updated_at=row[5],
    )


def set_signature_policy(conn: Connection, policy: SignaturePolicy) -> None:
    conn.execute(sa.delete(POLICIES).where(POLICIES.c.scope == policy.scope))
    conn.execute(
        sa.insert(POLICIES).values(
            scope=policy.scope,
            mode=policy.mode,
            public_keys=json.dumps(list(policy.public_keys)),
            roots=json.dumps(list(policy.roots)),
            version=policy.version,
            updated_at=policy.updated_at,
        )
    )


def remove_signature_policy(conn: Connection, scope: str) -> bool:
    return conn.execute(sa.delete(POLICIES).where(POLICIES.c.scope == scope)).rowcount > 0


def signature_policies(conn: Connection, scope: str) -> list[SignaturePolicy]:
    # Compared as text: a LIKE would read `_` and `%` in names as wildcards.
    prefix = scope + "/"
    rows = conn.execute(
        sa.select(*COLUMNS)
        .where(
            sa.or_(
                POLICIES.c.scope == scope,
                sa.func.substr(POLICIES.c.scope, 1, len(prefix)) == prefix,
            )
        )
        .order_by(POLICIES.c.scope)
    )
    return [_policy(row) for row in rows]


def signature_policy_for(conn: Connection, repository: str) -> SignaturePolicy | None:
    namespace = repository.split("/", 1)[0]
    rows = list(
        direct.execute(
            conn, POLICY_OF_REPOSITORY, {"namespace": namespace, "repository": repository}
        )
    )
    if not rows:
        return None
    # The more specific scope wins: the repository's own policy replaces its namespace's.
    return _policy(max(rows, key=lambda row: len(row[0])))


def signature_policy_and_manifest(
    conn: Connection, repository: str, reference: str | None
) -> tuple[SignaturePolicy | None, str | None]:
    """The policy a repository is under and, when there is one, the digest `reference` (a tag
    or a digest) resolves to there: what a remembered verification rests on, read in the same
    visit to the store as the policy."""
    policy = signature_policy_for(conn, repository)
    if policy is None or reference is None:
        return policy, None
    if DIGEST_REFERENCE.fullmatch(reference):
        record = get_manifest(conn, repository, reference)
    else:
        record = resolve_tag(conn, repository, reference)
    return policy, record.digest if record is not None else None


def indexes_listing(conn: Connection, repository: str, digest: str) -> list[ManifestRecord]:
    refs = t.manifest_references
    rows = conn.execute(
        sa.select(*MANIFEST_COLUMNS)
        .join(t.repositories)
        .join(
            refs,
            sa.and_(
                refs.c.repository_id == t.manifests.c.repository_id,
                refs.c.manifest_digest == t.manifests.c.digest,
            ),
        )
        .where(
            t.repositories.c.name == repository,
            refs.c.target_digest == digest,
            refs.c.kind == "manifest",
        )
        .order_by(t.manifests.c.created_at.desc(), t.manifests.c.digest)
    )
    return [manifest_record(row) for row in rows]


class SQLSignaturePolicies(SQLAggregate):
    async def set_signature_policy(self, policy: SignaturePolicy, *, audit: AuditOf = None) -> None:
        await self.runner.write(audited(partial(set_signature_policy, policy=policy), audit))

    async def remove_signature_policy(self, scope: str, *, audit: AuditOf = None) -> bool:
        return await self.runner.write(
            audited(partial(remove_signature_policy, scope=scope), audit)
        )

    async def signature_policies(self, scope: str) -> list[SignaturePolicy]:
        return await self.runner.read(partial(signature_policies, scope=scope))

    async def signature_policy_for(self, repository: str) -> SignaturePolicy | None:
        return await self.runner.read(partial(signature_policy_for, repository=repository))

    async def signature_policy_and_manifest(
        self, repository: str, reference: str | None
    ) -> tuple[SignaturePolicy | None, str | None]:
        # Asked on every manifest pull: on SQLite, on the loop and remembered until the next
        # commit (a hop to a thread would cost more than the lookups). With a reference the
        # policy and the reference are two statements, each true when read; a signature
        # removed in between is seen by the next pull.
        return await self.runner.read(
            partial(signature_policy_and_manifest, repository=repository, reference=reference),
            inline=True,
            key=("signature policy", repository, reference),
        )

    async def indexes_listing(self, repository: str, digest: str) -> list[ManifestRecord]:
        return await self.runner.read(
            partial(indexes_listing, repository=repository, digest=digest)
        )
