"""Immutability rules by namespace or repository, and the check a tag move makes against them.

The check (`refuse_immutable_moves`, `refuse_immutable_removals`) runs inside the transaction
that moves or removes the tags: on SQLite writers take turns, and on PostgreSQL the transaction
is serializable, so of two pushes of different manifests to a new immutable tag one commits and
the other, run again, finds the tag taken.
"""

from __future__ import annotations

from functools import partial

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.core.tag_patterns import matches
from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.audit import audited
from dockyard.metadata.base import AuditOf, TagImmutable, TagRule
from dockyard.metadata.statements import insert_ignore

RULES = t.immutable_tag_rules

# The rules that apply to a repository: its namespace's and its own. Built once, as a push runs it.
RULES_OF_REPOSITORY = (
    sa.select(RULES.c.scope, RULES.c.pattern)
    .where(RULES.c.scope.in_([sa.bindparam("namespace"), sa.bindparam("repository")]))
    .order_by(RULES.c.scope, RULES.c.pattern)
)


def rules_of(conn: Connection, repository: str) -> list[tuple[str, str]]:
    namespace = repository.split("/", 1)[0]
    rows = direct.execute(
        conn, RULES_OF_REPOSITORY, {"namespace": namespace, "repository": repository}
    )
    return [(row[0], row[1]) for row in rows]


def rule_catching(rules: list[tuple[str, str]], tag: str) -> tuple[str, str] | None:
    for scope, pattern in rules:
        if matches(pattern, tag):
            return scope, pattern
    return None


def current_digests(conn: Connection, repo_id: int, tags: list[str]) -> dict[str, str]:
    rows = conn.execute(
        sa.select(t.tags.c.name, t.tags.c.manifest_digest).where(
            t.tags.c.repository_id == repo_id, t.tags.c.name.in_(tags)
        )
    )
    return {row[0]: row[1] for row in rows}


def refuse_immutable_moves(
    conn: Connection, repo_id: int, repository: str, tags: list[str], digest: str
) -> None:
    """Raise `TagImmutable` if one of `tags` matches a rule and points at another manifest.
    Pointing it at the manifest it already names is no move: a retried push succeeds."""
    if not tags:
        return
    rules = rules_of(conn, repository)
    if not rules:
        return
    guarded = {tag: rule for tag in tags if (rule := rule_catching(rules, tag)) is not None}
    if not guarded:
        return
    for tag, current in current_digests(conn, repo_id, list(guarded)).items():
        if current != digest:
            scope, pattern = guarded[tag]
            raise TagImmutable(tag, pattern, scope)


def refuse_immutable_removals(
    conn: Connection, repo_id: int, repository: str, tags: list[str]
) -> None:
    """Raise `TagImmutable` if one of these existing tags matches a rule."""
    if not tags:
        return
    rules = rules_of(conn, repository)
    for tag in sorted(tags):
        rule = rule_catching(rules, tag)
        if rule is not None:
            raise TagImmutable(tag, rule[1], rule[0])


def tags_of_manifest(conn: Connection, repo_id: int, digest: str) -> list[str]:
    return list(
        conn.execute(
            sa.select(t.tags.c.name).where(
                t.tags.c.repository_id == repo_id, t.tags.c.manifest_digest == digest
            )
        ).scalars()
    )


def add_tag_rule(conn: Connection, scope: str, pattern: str, now: float) -> bool:
    before = conn.execute(
        sa.select(RULES.c.created_at).where(RULES.c.scope == scope, RULES.c.pattern == pattern)
    ).first()
    if before is not None:
        return False
    insert_ignore(conn, RULES, scope=scope, pattern=pattern, created_at=now)
    return True


def remove_tag_rule(conn: Connection, scope: str, pattern: str) -> bool:
    result = conn.execute(
        sa.delete(RULES).where(RULES.c.scope == scope, RULES.c.pattern == pattern)
    )
    return result.rowcount > 0


def tag_rules(conn: Connection, scope: str) -> list[TagRule]:
    # A namespace lists its repositories' rules too; a LIKE would read `_` and `%` in names
    # as wildcards, so the prefix is compared as text.
    prefix = scope + "/"
    rows = conn.execute(
        sa.select(RULES.c.scope, RULES.c.pattern, RULES.c.created_at)
        .where(
            sa.or_(
                RULES.c.scope == scope,
                sa.func.substr(RULES.c.scope, 1, len(prefix)) == prefix,
            )
        )
        .order_by(RULES.c.scope, RULES.c.pattern)
    )
    return [TagRule(row[0], row[1], row[2]) for row in rows]


class SQLTagRules(SQLAggregate):
    async def add_tag_rule(
        self, scope: str, pattern: str, now: float, *, audit: AuditOf = None
    ) -> bool:
        return await self.runner.write(
            audited(partial(add_tag_rule, scope=scope, pattern=pattern, now=now), audit)
        )

    async def remove_tag_rule(self, scope: str, pattern: str, *, audit: AuditOf = None) -> bool:
        return await self.runner.write(
            audited(partial(remove_tag_rule, scope=scope, pattern=pattern), audit)
        )

    async def tag_rules(self, scope: str) -> list[TagRule]:
        return await self.runner.read(partial(tag_rules, scope=scope))
