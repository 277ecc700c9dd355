"""Retention policies: which tags expire, shown first as a dry run, then removed.

A policy on a namespace applies to each of its repositories; a repository's own policy
replaces its namespace's. In each repository the tags are ranked by when they were last
pushed. A tag expires when it is not among the `keep_last` most recent (if set) and was pushed
more than `older_than` ago (if set); a tag matching `keep` never expires, nor does one an
immutability rule holds. Removing a tag leaves its manifest untagged: what becomes of it is
the garbage collector's untagged-manifest policy.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import validate_name
from dockyard.core.tag_patterns import matches
from dockyard.metadata.base import (
    AuditEntry,
    MetadataStore,
    PushedTag,
    RetentionPolicy,
    TagImmutable,
)
from dockyard.service.audit import AuditService
from dockyard.service.tag_rules import checked_pattern

log = logging.getLogger("dockyard")

MAX_KEEP_LAST = 1_000_000
_DURATION = re.compile(r"([0-9]{1,9})([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    """`30d`, `12h`, `2w`: a unit is required (a bare `30` meant as days would be seconds)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise RegistryError(
            ErrorCode.BAD_REQUEST, "a duration is a number and a unit: s, m, h, d or w (30d)"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def checked_policy(
    scope: str, keep_last: int | None, older_than: str | None, keep: str | None
) -> RetentionPolicy:
    validate_name(scope)
    if keep_last is None and older_than is None:
        raise RegistryError(
            ErrorCode.BAD_REQUEST, "a retention policy needs keep_last, older_than or both"
        )
    if keep_last is not None and not 0 <= keep_last <= MAX_KEEP_LAST:
        raise RegistryError(
            ErrorCode.BAD_REQUEST, f"keep_last is a number from 0 to {MAX_KEEP_LAST}"
        )
    return RetentionPolicy(
        scope,
        keep_last,
        parse_duration(older_than) if older_than is not None else None,
        checked_pattern(keep) if keep is not None else None,
    )


@dataclass(frozen=True, slots=True)
class Expiry:
    repository: str
    tag: str
    digest: str
    pushed_at: float
    policy: str  # the scope of the policy that expires it


def expired(policy: RetentionPolicy, tags: list[PushedTag], now: float) -> list[PushedTag]:
    """The tags of one repository that `policy` expires, most recent first."""
    ranked = sorted(tags, key=lambda t: (-t.pushed_at, t.tag))
    gone = []
    for rank, tag in enumerate(ranked):
        if policy.keep_last is not None and rank < policy.keep_last:
            continue
        if (
            policy.older_than_seconds is not None
            and now - tag.pushed_at <= policy.older_than_seconds
        ):
            continue
        if policy.keep_pattern is not None and matches(policy.keep_pattern, tag.tag):
            continue
        gone.append(tag)
    return gone


class RetentionService:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta
        self.audit = AuditService(meta)

    async def set(self, policy: RetentionPolicy) -> None:
        detail: dict[str, object] = {
            "keep_last": policy.keep_last,
            "older_than_seconds": policy.older_than_seconds,
            "keep_pattern": policy.keep_pattern,
        }
        await self.meta.set_retention_policy(
            policy, time.time(), audit=self._entry(policy.scope, detail)
        )

    async def remove(self, scope: str) -> bool:
        return await self.meta.remove_retention_policy(
            validate_name(scope), audit=self._entry(scope, {"removed": True})
        )

    def _entry(self, scope: str, detail: dict[str, object]) -> AuditEntry:
        return self.audit.entry(
            "policy.retention", scope, repository=scope if "/" in scope else None, detail=detail
        )

    async def policies(self, scope: str) -> list[RetentionPolicy]:
        return await self.meta.retention_policies(validate_name(scope))

    async def plan(
        self, scope: str, proposed: RetentionPolicy | None = None, now: float | None = None
    ) -> list[Expiry]:
        """What would expire in `scope` now (the dry run): under the policies stored, or with
        `proposed` in place of the policy of its scope."""
        validate_name(scope)
        now = time.time() if now is None else now
        policies = {p.scope: p for p in await self.meta.retention_policies(scope.split("/")[0])}
        if proposed is not None:
            policies[proposed.scope] = proposed
        by_repository: dict[str, list[PushedTag]] = {}
        for tag in await self.meta.pushed_tags(scope):
            by_repository.setdefault(tag.repository, []).append(tag)
        rules = {}
        plan: list[Expiry] = []
        for repository, tags in sorted(by_repository.items()):
            policy = policies.get(repository) or policies.get(repository.split("/")[0])
            if policy is None:
                continue
            namespace = repository.split("/")[0]
            if namespace not in rules:
                rules[namespace] = await self.meta.tag_rules(namespace)
            held = [r.pattern for r in rules[namespace] if r.scope in (namespace, repository)]
            for tag in expired(policy, tags, now):
                if not any(matches(pattern, tag.tag) for pattern in held):
                    plan.append(
                        Expiry(repository, tag.tag, tag.digest, tag.pushed_at, policy.scope)
                    )
        return plan

    async def apply(self, scope: str, now: float | None = None) -> list[Expiry]:
        """Remove what `plan` names, each tag only if it was not pushed again since."""
        removed = []
        for expiry in await self.plan(scope, now=now):
            try:
                if await self.meta.expire_tag(expiry.repository, expiry.tag, expiry.pushed_at):
                    removed.append(expiry)
            except TagImmutable:
                continue  # a rule added since the plan was read
        return removed

    async def apply_all(self) -> int:
        """Every stored policy, as the background job does; the number of tags removed."""
        scopes = {p.scope.split("/")[0] for p in await self.meta.retention_policies()}
        removed = 0
        for namespace in sorted(scopes):
            removed += len(await self.apply(namespace))
        return removed
