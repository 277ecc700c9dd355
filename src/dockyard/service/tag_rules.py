"""Immutable tags: the rules owners set per namespace or repository, and the refusal a push or
delete meets when it would move or remove a tag one of them catches."""

from __future__ import annotations

import time

from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.names import validate_name
from dockyard.core.tag_patterns import InvalidPattern, validate_pattern
from dockyard.metadata.base import AuditEntry, MetadataStore, TagImmutable, TagRule
from dockyard.service.audit import AuditService


def refusal(exc: TagImmutable) -> RegistryError:
    """What a client is told: the tag, and the rule that holds it."""
    return RegistryError(
        ErrorCode.DENIED,
        f"tag {exc.tag} is immutable (rule `{exc.pattern}` on {exc.scope})",
        detail={"tag": exc.tag, "pattern": exc.pattern, "scope": exc.scope},
    )


def checked_scope(scope: str) -> str:
    """A namespace (`acme`) or a repository (`acme/app`), spelled as repository names are."""
    return validate_name(scope)


def checked_pattern(pattern: str) -> str:
    try:
        return validate_pattern(pattern)
    except InvalidPattern as exc:
        raise RegistryError(
            ErrorCode.BAD_REQUEST, str(exc), detail={"pattern": pattern[:200]}
        ) from None


class TagRuleService:
    def __init__(self, meta: MetadataStore) -> None:
        self.meta = meta
        self.audit = AuditService(meta)

    async def add(self, scope: str, pattern: str) -> bool:
        """False when the rule was there already."""
        scope, pattern = checked_scope(scope), checked_pattern(pattern)
        return await self.meta.add_tag_rule(
            scope, pattern, time.time(), audit=self._entry(scope, {"added": pattern})
        )

    async def remove(self, scope: str, pattern: str) -> bool:
        scope, pattern = checked_scope(scope), checked_pattern(pattern)
        return await self.meta.remove_tag_rule(
            scope, pattern, audit=self._entry(scope, {"removed": pattern})
        )

    def _entry(self, scope: str, detail: dict[str, str]) -> AuditEntry:
        return self.audit.entry(
            "policy.immutability", scope, repository=scope if "/" in scope else None, detail=detail
        )

    async def rules(self, scope: str) -> list[TagRule]:
        return await self.meta.tag_rules(checked_scope(scope))
