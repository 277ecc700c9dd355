"""The outbox of events and the webhooks that receive them.

An event is written in the transaction of the change it reports (a manifest or tag pushed, a
manifest, tag or repository deleted), once per webhook whose filters take it, so a change is
never committed without its event nor an event without its change. Pulls change nothing: they
are written in batches, after the fact, when the settings ask for them. Delivering deletes a
webhook's rows once the receiver acknowledged them; until then they survive restarts.

A webhook is delivered by one process at a time, which holds a lease on its `webhook_state`
row (a conditional UPDATE, the same on both databases). A lease, not a row lock held across
the request: the request takes seconds, and SQLite's writer (or PostgreSQL's row) would be held
that long. Whoever holds the lease sends the webhook's oldest rows, in `id` order.
"""

from __future__ import annotations

import fnmatch
import json
import uuid
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dockyard.core.event_origin import EventOrigin
from dockyard.metadata import direct
from dockyard.metadata import schema as t
from dockyard.metadata.aggregate import SQLAggregate
from dockyard.metadata.base import OutboxEvent, Webhook, WebhookDelivery, WebhookSpec

ALL_WEBHOOKS = sa.select(t.webhooks.c.id, t.webhooks.c.repositories, t.webhooks.c.actions).order_by(
    t.webhooks.c.id
)


def wants(repositories: str, actions: str, repository: str, action: str) -> bool:
    """Whether a webhook's filters take this event: a glob over the repository's name (its
    `*` spans slashes) and a comma-separated list of actions."""
    return action in actions.split(",") and fnmatch.fnmatchcase(repository, repositories)


def record_events(
    conn: Connection, events: Sequence[tuple[str, str, dict[str, Any]]], now: float
) -> int:
    """Write each (repository, action, fields) event once for every webhook that wants it;
    how many rows were written. With no webhook at all, one cheap read and nothing else."""
    hooks = direct.execute(conn, ALL_WEBHOOKS, {}).all()  # a push's statements go direct
    if not hooks:
        return 0
    rows: list[dict[str, Any]] = []
    for repository, action, fields in events:
        event_id = str(uuid.uuid4())
        payload = json.dumps(
            {"id": event_id, "timestamp": now, "action": action, "repository": repository} | fields,
            separators=(",", ":"),
        )
        rows.extend(
            {
                "webhook_id": hook_id,
                "event_id": event_id,
                "repository": repository,
                "action": action,
                "payload": payload,
                "created_at": now,
            }
            for hook_id, repositories, actions in hooks
            if wants(repositories, actions, repository, action)
        )
    if rows:
        conn.execute(sa.insert(t.event_outbox), rows)
    return len(rows)


def record_event(
    conn: Connection,
    repository: str,
    action: str,
    now: float,
    origin: EventOrigin | None,
    **fields: Any,
) -> None:
    """One event of the change this transaction makes (fields left None are left out)."""
    kept = {k: v for k, v in fields.items() if v is not None}
    if origin is not None:
        kept["origin"] = origin.as_json()
    record_events(conn, [(repository, action, kept)], now)


def add_webhook(conn: Connection, spec: WebhookSpec, secret: str, now: float) -> int:
    hook_id: int = conn.execute(
        sa.insert(t.webhooks)
        .values(
            url=spec.url,
            format=spec.format,
            repositories=spec.repositories,
            actions=",".join(spec.actions),
            secret=secret,
            created_at=now,
        )
        .returning(t.webhooks.c.id)
    ).scalar_one()
    conn.execute(sa.insert(t.webhook_state).values(webhook_id=hook_id))
    return hook_id


def remove_webhook(conn: Connection, hook_id: int) -> bool:
    for table in (t.event_outbox, t.webhook_deliveries, t.webhook_state):
        conn.execute(sa.delete(table).where(table.c.webhook_id == hook_id))
    return conn.execute(sa.delete(t.webhooks).where(t.webhooks.c.id == hook_id)).rowcount > 0


_PENDING = (
    sa.select(sa.func.count())
    .where(t.event_outbox.c.webhook_id == t.webhooks.c.id)
    .scalar_subquery()
)
_LISTING = (
    sa.select(
        t.webhooks,
        t.webhook_state.c.attempts,
        t.webhook_state.c.next_attempt_at,
        t.webhook_state.c.delivered,
        t.webhook_state.c.last_status,
        t.webhook_state.c.last_error,
        t.webhook_state.c.last_attempt_at,
        t.webhook_state.c.last_success_at,
        _PENDING.label("pending"),
    )
    .join(t.webhook_state, t.webhook_state.c.webhook_id == t.webhooks.c.id)
    .order_by(t.webhooks.c.id)
)


def _webhook(row: Any) -> Webhook:
    m = row._mapping
    return Webhook(
        id=m["id"],
        url=m["url"],
        format=m["format"],
        repositories=m["repositories"],
        actions=tuple(m["actions"].split(",")),
        secret=m["secret"],
        created_at=m["created_at"],
        pending=m["pending"],
        delivered=m["delivered"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        last_status=m["last_status"],
        last_error=m["last_error"],
        last_attempt_at=m["last_attempt_at"],
        last_success_at=m["last_success_at"],
    )


def webhooks(conn: Connection) -> list[Webhook]:
    return [_webhook(row) for row in conn.execute(_LISTING)]


def webhook(conn: Connection, hook_id: int) -> Webhook | None:
    row = conn.execute(_LISTING.where(t.webhooks.c.id == hook_id)).first()
    return _webhook(row) if row else None


def due_webhooks(conn: Connection, owner: str, now: float) -> list[int]:
    """The webhooks with events waiting, due for an attempt, and not leased by another."""
    waiting = sa.exists().where(t.event_outbox.c.webhook_id == t.webhook_state.c.webhook_id)
    return list(
        conn.execute(
            sa.select(t.webhook_state.c.webhook_id)
            .where(
                waiting,
                t.webhook_state.c.next_attempt_at <= now,
                sa.or_(
                    t.webhook_state.c.lease_until < now,
                    t.webhook_state.c.lease_owner == owner,
                ),
            )
            .order_by(t.webhook_state.c.webhook_id)
        ).scalars()
    )


def claim(conn: Connection, hook_id: int, owner: str, now: float, until: float) -> bool:
    """Take (or extend) the lease on a webhook; False when another process holds it."""
    state = t.webhook_state.c
    result = conn.execute(
        sa.update(t.webhook_state)
        .where(
            state.webhook_id == hook_id,
            sa.or_(state.lease_until < now, state.lease_owner == owner),
        )
        .values(lease_owner=owner, lease_until=until)
    )
    return result.rowcount > 0


def release(conn: Connection, hook_id: int, owner: str) -> None:
    state = t.webhook_state.c
    conn.execute(
        sa.update(t.webhook_state)
        .where(state.webhook_id == hook_id, state.lease_owner == owner)
        .values(lease_owner=None, lease_until=0)
    )


def pending_events(conn: Connection, hook_id: int, limit: int) -> list[OutboxEvent]:
    rows = conn.execute(
        sa.select(t.event_outbox.c.id, t.event_outbox.c.event_id, t.event_outbox.c.payload)
        .where(t.event_outbox.c.webhook_id == hook_id)
        .order_by(t.event_outbox.c.id)
        .limit(limit)
    )
    return [OutboxEvent(row[0], row[1], json.loads(row[2])) for row in rows]


def _log(
    conn: Connection,
    hook_id: int,
    events: Sequence[OutboxEvent],
    attempt: int,
    status: int | None,
    error: str | None,
    now: float,
) -> None:
    conn.execute(
        sa.insert(t.webhook_deliveries).values(
            webhook_id=hook_id,
            first_event=events[0].event_id,
            events=len(events),
            attempt=attempt,
            status=status,
            error=error,
            at=now,
        )
    )
    log = t.webhook_deliveries.c
    oldest_kept = (
        sa.select(log.id)
        .where(log.webhook_id == hook_id)
        .order_by(log.id.desc())
        .offset(t.WEBHOOK_DELIVERIES_KEPT - 1)
        .limit(1)
        .scalar_subquery()
    )
    conn.execute(
        sa.delete(t.webhook_deliveries).where(log.webhook_id == hook_id, log.id < oldest_kept)
    )


def delivered(
    conn: Connection,
    hook_id: int,
    owner: str,
    events: Sequence[OutboxEvent],
    status: int,
    now: float,
) -> bool:
    """The receiver took `events`: they leave the outbox. False (and nothing changed) when
    this process lost its lease meanwhile; the next holder sends them again."""
    state = t.webhook_state.c
    attempts = conn.execute(
        sa.select(state.attempts).where(state.webhook_id == hook_id, state.lease_owner == owner)
    ).scalar()
    if attempts is None:
        return False
    conn.execute(sa.delete(t.event_outbox).where(t.event_outbox.c.id.in_([e.row for e in events])))
    conn.execute(
        sa.update(t.webhook_state)
        .where(state.webhook_id == hook_id)
        .values(
            attempts=0,
            next_attempt_at=0,
            delivered=state.delivered + len(events),
            last_status=status,
            last_error=None,
            last_attempt_at=now,
            last_success_at=now,
        )
    )
    _log(conn, hook_id, events, attempts + 1, status, None, now)
    return True


def failed(
    conn: Connection,
    hook_id: int,
    owner: str,
    events: Sequence[OutboxEvent],
    status: int | None,
    error: str,
    now: float,
    retry_in: Callable[[int], float],
) -> int:
    """An attempt failed: count it, and wait `retry_in(attempts)` seconds before the next.
    Returns the attempts made so far (0 when the lease was lost)."""
    state = t.webhook_state.c
    attempts = conn.execute(
        sa.select(state.attempts).where(state.webhook_id == hook_id, state.lease_owner == owner)
    ).scalar()
    if attempts is None:
        return 0
    attempts += 1
    conn.execute(
        sa.update(t.webhook_state)
        .where(state.webhook_id == hook_id)
        .values(
            attempts=attempts,
            next_attempt_at=now + retry_in(attempts),
            last_status=status,
            last_error=error,
            last_attempt_at=now,
        )
    )
    _log(conn, hook_id, events, attempts, status, error, now)
    return int(attempts)


def deliveries(conn: Connection, hook_id: int, limit: int) -> list[WebhookDelivery]:
    log = t.webhook_deliveries.c
    rows = conn.execute(
        sa.select(log.first_event, log.events, log.attempt, log.status, log.error, log.at)
        .where(log.webhook_id == hook_id)
        .order_by(log.id.desc())
        .limit(limit)
    )
    return [WebhookDelivery(*row) for row in rows]


class SQLEvents(SQLAggregate):
    async def record_events(
        self, events: Sequence[tuple[str, str, dict[str, Any]]], now: float
    ) -> int:
        # Only pulls come this way (changes write theirs in their own transaction): a record
        # the registry may lose to a power cut, committed without waiting for the disk.
        return await self.runner.write(
            partial(record_events, events=events, now=now), durable=False
        )

    async def add_webhook(self, spec: WebhookSpec, secret: str, now: float) -> int:
        return await self.runner.write(partial(add_webhook, spec=spec, secret=secret, now=now))

    async def remove_webhook(self, hook_id: int) -> bool:
        return await self.runner.write(partial(remove_webhook, hook_id=hook_id))

    async def webhooks(self) -> list[Webhook]:
        return await self.runner.read(webhooks)

    async def webhook(self, hook_id: int) -> Webhook | None:
        return await self.runner.read(partial(webhook, hook_id=hook_id))

    async def due_webhooks(self, owner: str, now: float) -> list[int]:
        return await self.runner.read(partial(due_webhooks, owner=owner, now=now))

    async def claim_webhook(self, hook_id: int, owner: str, now: float, until: float) -> bool:
        return await self.runner.write(
            partial(claim, hook_id=hook_id, owner=owner, now=now, until=until), durable=False
        )

    async def release_webhook(self, hook_id: int, owner: str) -> None:
        await self.runner.write(partial(release, hook_id=hook_id, owner=owner), durable=False)

    async def pending_events(self, hook_id: int, limit: int) -> list[OutboxEvent]:
        return await self.runner.read(partial(pending_events, hook_id=hook_id, limit=limit))

    async def events_delivered(
        self, hook_id: int, owner: str, events: Sequence[OutboxEvent], status: int, now: float
    ) -> bool:
        return await self.runner.write(
            partial(delivered, hook_id=hook_id, owner=owner, events=events, status=status, now=now)
        )

    async def events_failed(
        self,
        hook_id: int,
        owner: str,
        events: Sequence[OutboxEvent],
        status: int | None,
        error: str,
        now: float,
        retry_in: Callable[[int], float],
    ) -> int:
        return await self.runner.write(
            partial(
                failed,
                hook_id=hook_id,
                owner=owner,
                events=events,
                status=status,
                error=error,
                now=now,
                retry_in=retry_in,
            )
        )

    async def webhook_deliveries(self, hook_id: int, limit: int) -> list[WebhookDelivery]:
        return await self.runner.read(partial(deliveries, hook_id=hook_id, limit=limit))
