"""The audit log: who (account, access token's name, client address) did what to which object,
and when.

The HTTP layer says who is acting by setting `ACTOR` once it knows the caller; an admin command
on the data folder acts as `LOCAL`. Services hand the store call that makes a change its
`AuditService.entry` (with the actor), written in the change's own transaction, so a change
never commits without its record nor a record without its change. Only names are recorded:
never a password, a token or a secret value.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from dockyard.metadata.base import AuditEntry, MetadataStore
from dockyard.metadata.base import AuditQuery as AuditQuery  # for the HTTP layer and commands

log = logging.getLogger("dockyard.audit")

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Actor:
    account: str | None  # None: nobody signed in
    token: str | None  # the access token's name when one was used
    address: str | None  # the client's address (behind a trusted proxy, the real one)


def acting(name: str, token: str | None, address: str) -> Actor:
    """Make the signed-in account `name` ("" for nobody) the actor of the rest of the request;
    returns it."""
    actor = Actor(name or None, token if name else None, address)
    ACTOR.set(actor)
    return actor


NOBODY = Actor(None, None, None)
LOCAL = Actor(None, None, "local")  # an admin command on the data folder
ACTOR: ContextVar[Actor] = ContextVar("dockyard_actor", default=NOBODY)

# The actions recorded, as stored in `audit_log.action`.
ACTIONS = (
    "manifest.push",
    "manifest.delete",
    "tag.delete",
    "repository.delete",
    "repository.visibility",
    "namespace.visibility",
    "token.create",
    "token.revoke",
    "user.create",
    "user.remove",
    "user.disable",
    "user.enable",
    "user.password",
    "user.admin",
    "user.pull_limit",
    "org.create",
    "member.set",
    "member.remove",
    "policy.retention",
    "policy.immutability",
    "policy.quota",
    "policy.signature",
    "login.failed",
)


# Longest text kept of a recorded name (`account`, `token`, `repository`: their columns' size)
# and of the object (a repository name with a tag or digest fits).
RECORDED_LENGTH = 255
OBJECT_LENGTH = 1024


def as_recorded(text: str | None, limit: int = RECORDED_LENGTH) -> str | None:
    """`text` as the log keeps it: what a client sent (the username of a failed login, a name
    in a path) may hold control characters, which PostgreSQL refuses in text (NUL) and which
    would forge lines in a terminal; they are kept as escapes, and the whole cut to length."""
    if text is None:
        return None
    if text.isprintable():
        return text[:limit]
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return shown[:limit]


class AuditService:
    def __init__(self, meta: MetadataStore, retention_days: float = 90) -> None:
        self.meta = meta
        self.retention_days = retention_days

    async def record(
        self,
        action: str,
        object: str,
        *,
        repository: str | None = None,
        detail: dict[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> None:
        """Record `action` on `object` by the current actor (or `actor`), in a transaction of
        its own; a change whose store call takes an `audit` entry records it in its own."""
        await self.meta.record_audit(
            self.entry(action, object, repository=repository, detail=detail, actor=actor)
        )

    def entry(
        self,
        action: str,
        object: str,
        *,
        repository: str | None = None,
        detail: dict[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> AuditEntry:
        """The record of `action` on `object` by the current actor (or `actor`), now."""
        who = actor or ACTOR.get()
        return AuditEntry(
            at=time.time(),
            action=action,
            object=as_recorded(object, OBJECT_LENGTH) or "",
            account=as_recorded(who.account),
            token=as_recorded(who.token),
            address=who.address,
            repository=as_recorded(repository),
            detail=detail,
        )

    async def entries(self, query: AuditQuery) -> list[AuditEntry]:
        return await self.meta.audit_entries(query)

    async def prune(self, now: float | None = None) -> int:
        """Remove the records older than the retention period; how many."""
        cutoff = (now if now is not None else time.time()) - self.retention_days * DAY
        removed = await self.meta.prune_audit(cutoff)
        if removed:
            log.info("audit: %d record(s) older than %g days pruned", removed, self.retention_days)
        return removed


MAX_PAGE = 1000


def parse_time(text: str) -> float:
    """A moment given as seconds since the epoch, an ISO 8601 date or date and time (UTC when
    no offset is given), or a duration back from now (`90m`, `12h`, `7d`)."""
    import datetime

    text = text.strip()
    units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY}
    if text[-1:] in units and text[:-1].isdigit():
        return time.time() - int(text[:-1]) * units[text[-1]]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text[:40]!r} is no time: seconds since the epoch, an ISO 8601 date or time "
            "(2026-01-31, 2026-01-31T12:00:00Z) or a duration back from now (90m, 12h, 7d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    """A record as `/api/v1/audit` and `dockyard audit --json` show it."""
    return {
        "id": entry.id,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.at)),
        "at": entry.at,
        "action": entry.action,
        "account": entry.account,
        "token": entry.token,
        "address": entry.address,
        "repository": entry.repository,
        "object": entry.object,
        "detail": entry.detail,
    }
