"""Who and which request caused a change, for the event that reports it.

The HTTP layer sets it for the request it handles; the metadata store reads it, in the caller's
own context, when it writes an event in the transaction of the change (the transaction itself
may run on another thread, where the caller's context is not). Outside a request (a command,
a background job) there is none, and events carry only what changed.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True, slots=True)
class EventOrigin:
    actor: str = ""  # the account's name; empty when anonymous
    request_id: str = ""
    addr: str = ""  # the client's address and port
    host: str = ""  # the Host the client asked for
    method: str = ""
    useragent: str = ""

    def as_json(self) -> dict[str, str]:
        return asdict(self)


_origin: ContextVar[EventOrigin | None] = ContextVar("dockyard_event_origin", default=None)


def current_origin() -> EventOrigin | None:
    return _origin.get()


def set_origin(origin: EventOrigin) -> None:
    _origin.set(origin)


def set_actor(actor: str) -> None:
    """Name the account behind the current request, once it is known."""
    origin = _origin.get()
    if origin is not None and origin.actor != actor:
        _origin.set(replace(origin, actor=actor))
