"""Events and webhooks: configuring webhooks, recording pulls, and delivering the outbox.

Pushes and deletes write their events in their own transaction (`metadata/events.py`); this
service adds pulls when `event_pulls` is on, counted per puller and manifest and written once a
window (`service/pull_tally.py`: a pull changes nothing, so a crash losing the last window of
them loses no change; a graceful stop writes it) and runs the deliverer, a
background job of every serving process. Each webhook is delivered by whichever process holds
its lease, oldest event first, at least once: a request the receiver took but whose
acknowledgement was lost is sent again, with the same event ids, for the receiver to drop.
A failed attempt is retried after an exponential delay with jitter, however long the receiver
stays away; the events wait in the metadata store meanwhile, across restarts.

The service speaks no HTTP itself: the assembly hands it a `Sender` (`dockyard.notify`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from dockyard.config import Settings
from dockyard.core.errors import ErrorCode, RegistryError
from dockyard.core.event_origin import EventOrigin
from dockyard.metadata.base import MetadataStore, Webhook, WebhookDelivery, WebhookSpec
from dockyard.service import event_formats, event_signing
from dockyard.service.pull_tally import PullKey, PullTally, outbox_items
from dockyard.service.webhook_urls import parsed, refusal

log = logging.getLogger("dockyard.events")

POLL_SECONDS = 0.5  # how often a process looks for events to deliver
# Distinct (repository, manifest, tag, puller) keys a window holds; past half of it the window
# is written at once, and a full tally (the store away) drops new keys' pulls, counted.
MAX_PULL_KEYS = 10_000


class DeliveryFailed(Exception):
    """A webhook request got no answer (refused, timed out, reset...)."""


class Sender(Protocol):
    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST `body` to `url` without following redirects; the answer's status.
        Raises `DeliveryFailed` when none came."""

    async def close(self) -> None: ...


@dataclass(frozen=True)
class NewWebhook:
    webhook: Webhook
    secret: str  # shown once, at creation


def retry_delay(base: float, ceiling: float) -> Callable[[int], float]:
    """Exponential backoff with full jitter over its upper half: attempts made by several
    receivers' registries at once spread out instead of arriving together."""

    def delay(attempts: int) -> float:
        bound = min(ceiling, base * 2 ** min(attempts - 1, 30))
        return bound / 2 + random.random() * bound / 2

    return delay


def webhook_json(hook: Webhook) -> dict[str, Any]:
    """A webhook as `/api/v1` and `dockyard webhook list --json` show it: never its secret."""
    return {
        "id": hook.id,
        "url": hook.url,
        "format": hook.format,
        "repositories": hook.repositories,
        "actions": list(hook.actions),
        "created_at": hook.created_at,
        "pending": hook.pending,
        "delivered": hook.delivered,
        "failed_attempts": hook.attempts,
        "next_attempt_at": hook.next_attempt_at or None,
        "last_status": hook.last_status,
        "last_error": hook.last_error,
        "last_attempt_at": hook.last_attempt_at,
        "last_success_at": hook.last_success_at,
    }


def delivery_json(d: WebhookDelivery) -> dict[str, Any]:
    return {
        "first_event": d.first_event,
        "events": d.events,
        "attempt": d.attempt,
        "status": d.status,
        "error": d.error,
        "at": d.at,
    }


class EventService:
    def __init__(self, settings: Settings, meta: MetadataStore) -> None:
        self.settings = settings
        self.meta = meta
        # Called at the first delivery (the assembly's; None: this process never delivers).
        self.sender_factory: Callable[[], Sender] | None = None
        self.sender: Sender | None = None
        self.owner = uuid.uuid4().hex  # this process, as a lease holder
        self.instance_id = str(uuid.uuid4())  # Distribution's source.instanceID
        self.base_url = settings.public_base()
        self.retry_in = retry_delay(
            settings.webhook_retry_seconds, settings.webhook_max_retry_seconds
        )
        self.lease_seconds = 2 * settings.webhook_timeout_seconds + 5
        self.pull_window = settings.event_pulls_window_seconds
        self._pulls = PullTally(MAX_PULL_KEYS)
        # Told how many pulls were dropped (the metrics' counter, wired by `report_to`).
        self.on_dropped: Callable[[int], None] | None = None
        self._drop_logged = False
        self._stopping = False
        self._wake = asyncio.Event()  # the deliverer's: look again now
        self._pulls_full = asyncio.Event()  # the pull writer's: write the batch now
        self._held: set[int] = set()  # webhooks whose lease this process took
        self._tasks: list[asyncio.Task[None]] = []
        self._pull_writer: asyncio.Task[None] | None = None

    # -- configuration ------------------------------------------------------------------------

    async def add(self, url: str, format: str, repositories: str, actions: list[str]) -> NewWebhook:
        if format not in event_formats.FORMATS:
            raise RegistryError(
                ErrorCode.BAD_REQUEST, f"format is one of {', '.join(event_formats.FORMATS)}"
            )
        wanted = tuple(dict.fromkeys(a.strip() for a in actions if a.strip()))
        if not wanted or any(a not in event_formats.ACTIONS for a in wanted):
            raise RegistryError(
                ErrorCode.BAD_REQUEST,
                f"actions are some of {', '.join(event_formats.ACTIONS)}",
            )
        if not repositories or len(repositories) > 255:
            raise RegistryError(
                ErrorCode.BAD_REQUEST, "repositories is a pattern of 1 to 255 characters"
            )
        parsed(url)
        reason = await refusal(url, self.settings.webhook_allow_loopback, unresolved_ok=True)
        if reason is not None:
            raise RegistryError(ErrorCode.BAD_REQUEST, f"webhook refused: {reason}")
        secret = event_signing.new_secret()
        hook_id = await self.meta.add_webhook(
            WebhookSpec(url, format, repositories, wanted), secret, time.time()
        )
        hook = await self.meta.webhook(hook_id)
        assert hook is not None
        return NewWebhook(hook, secret)

    async def remove(self, hook_id: int) -> bool:
        return await self.meta.remove_webhook(hook_id)

    async def all(self) -> list[Webhook]:
        return await self.meta.webhooks()

    async def get(self, hook_id: int) -> Webhook:
        hook = await self.meta.webhook(hook_id)
        if hook is None:
            raise RegistryError(ErrorCode.NOT_FOUND, f"no webhook {hook_id}")
        return hook

    async def deliveries(self, hook_id: int, limit: int = 50) -> list[WebhookDelivery]:
        await self.get(hook_id)
        return await self.meta.webhook_deliveries(hook_id, limit)

    def reload(self) -> None:
        """Look at the webhooks again now (after SIGHUP, or a change made elsewhere): they are
        read from the metadata store at every round, so this only cuts the wait short."""
        self._wake.set()

    # -- pulls ----------------------------------------------------------------------------------

    def pulled(self, key: PullKey, origin: Callable[[], EventOrigin | None]) -> None:
        """Count a manifest pull (when `event_pulls` is on), written with the window's others;
        `origin` (the request, as the event shows it) is asked for the window's first pull of
        `key` only."""
        tally = self._pulls
        if not tally.add(key, origin):
            self._dropped(1)
        elif len(tally) * 2 >= tally.max_keys:
            self._pulls_full.set()

    def _dropped(self, count: int) -> None:
        if not count:
            return
        if self.on_dropped is not None:
            self.on_dropped(count)
        if not self._drop_logged:
            self._drop_logged = True
            log.error(
                "pull events are being dropped: %d distinct pullers and manifests are waiting "
                "for the metadata store (counted in dockyard_events_dropped_total; logged once)",
                len(self._pulls),
            )

    async def flush_pulls(self) -> None:
        taken = self._pulls.take()
        if not taken:
            return
        try:
            await self.meta.record_events(outbox_items(taken), time.time())
        except BaseException:
            # Kept for the next try while the store is away (within the tally's bound).
            self._dropped(self._pulls.give_back(taken))
            raise

    # -- delivery -------------------------------------------------------------------------------

    def start(self, deliver: bool) -> None:
        """The background jobs of a serving process: the pull writer when pulls are recorded,
        the deliverer when `deliver` (a sender was given and the registry may write)."""
        if self.settings.event_pulls:
            self._pull_writer = asyncio.create_task(self._pull_loop())
        if deliver and self.sender_factory is not None:
            self._tasks.append(asyncio.create_task(self._deliver_loop()))

    async def close(self) -> None:
        # The pull writer is not cancelled mid-write (its batch would be lost): told to stop,
        # it writes what it holds and returns.
        self._stopping = True
        self._pulls_full.set()
        if self._pull_writer is not None:
            await self._pull_writer
            self._pull_writer = None
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        # Let another process take over at once rather than when the leases run out.
        for hook_id in sorted(self._held):
            try:
                await self.meta.release_webhook(hook_id, self.owner)
            except Exception:
                log.exception("releasing webhook %d failed; its lease will run out", hook_id)
        self._held.clear()
        try:
            await self.flush_pulls()
        except Exception:
            log.exception("writing the last pull events failed")
        if self.sender is not None:
            await self.sender.close()

    async def _pull_loop(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pulls_full.wait(), self.pull_window)
            self._pulls_full.clear()
            try:
                await self.flush_pulls()
            except Exception:
                log.exception("writing pull events failed; will retry")

    async def _deliver_loop(self) -> None:
        while True:
            try:
                while await self.deliver_due():
                    pass
            except Exception:
                log.exception("delivering events failed; will retry")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
            self._wake.clear()

    async def deliver_due(self) -> bool:
        """One batch to every webhook due for one that no other process holds; whether
        any batch was delivered (there may be more)."""
        progress = False
        for hook_id in await self.meta.due_webhooks(self.owner, time.time()):
            if await self._deliver_one(hook_id):
                progress = True
        return progress

    async def _deliver_one(self, hook_id: int) -> bool:
        now = time.time()
        if not await self.meta.claim_webhook(hook_id, self.owner, now, now + self.lease_seconds):
            self._held.discard(hook_id)
            return False
        self._held.add(hook_id)
        hook = await self.meta.webhook(hook_id)
        if hook is None or hook.next_attempt_at > now:
            return False
        events = await self.meta.pending_events(hook_id, event_formats.batch_size(hook.format))
        if not events:
            return False
        body, media_type = event_formats.body(
            hook.format, events, self.base_url, self.settings.listen, self.instance_id
        )
        headers = {
            "Content-Type": media_type,
            **event_signing.signed_headers(hook.secret, int(time.time()), body, events[0].event_id),
        }
        status: int | None = None
        error: str | None
        reason = await refusal(hook.url, self.settings.webhook_allow_loopback)
        if reason is not None:
            error = f"refused: {reason}"
        else:
            try:
                if self.sender is None:  # its HTTP client loads when first needed
                    assert self.sender_factory is not None
                    self.sender = self.sender_factory()
                status = await self.sender.send(hook.url, body, headers)
                error = None if 200 <= status < 300 else f"answered {status}"
            except DeliveryFailed as e:
                error = str(e) or type(e).__name__
        now = time.time()
        if error is None and status is not None:
            return await self.meta.events_delivered(hook_id, self.owner, events, status, now)
        attempts = await self.meta.events_failed(
            hook_id, self.owner, events, status, error or "", now, self.retry_in
        )
        # The URL is an administrator's setting, not a secret; the secret is never logged.
        log.warning(
            "webhook %d (%s): delivery of %d event(s) failed (attempt %d): %s",
            hook_id,
            hook.url,
            len(events),
            attempts,
            error,
        )
        return False
