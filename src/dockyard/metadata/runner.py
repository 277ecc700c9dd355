"""How the metadata store runs a transaction: the one interface both backends implement.

Every query is a plain function of a `Connection`; a runner decides on which thread, in which
transaction and with what retries it runs. SQLite's runner (`sqlite_runner`) keeps a small
thread pool, group commit and writer turns; PostgreSQL's (`postgres_runner`) runs writes
SERIALIZABLE and runs them again after a conflict. Query modules never ask which one they have.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from dockyard.metadata.advisory_lock import AdvisoryContentLock

T = TypeVar("T")

# Told of every finished transaction: its kind ("read" or "write"), its seconds (all attempts),
# and how many times it was run again. Given by the server (its metrics); the store knows no more.
TransactionObserver = Callable[[str, float, int], None]


@dataclass(frozen=True, slots=True)
class OneValue(Generic[T]):
    """A read that is one statement answering one value (`statement`'s first row's first
    column, None for no row), and what the caller makes of it: `convert(value)` is what the
    read's `work` returns, or None where the value alone does not tell (then `work` runs).
    A runner may send it to its driver as it is, past SQLAlchemy's execution: on PostgreSQL
    that machinery was about half of a listing page's own CPU time."""

    statement: Any  # a Core statement, built once and kept (its compiled form is kept by it)
    params: Mapping[str, Any]
    convert: Callable[[Any], T | None]


class TransactionRunner(Protocol):
    @property
    def shared(self) -> bool:
        """True when several replicas may use this database at once."""

    def on_abort(self, forget: Callable[[], None]) -> None:
        """Call `forget` whenever a write transaction was rolled back, or is about to run
        again: whatever a query remembered from inside it may be a lie."""

    def observe(self, observer: TransactionObserver) -> None:
        """Tell `observer` of every transaction from now on."""

    async def read(
        self,
        work: Callable[[Connection], T],
        *,
        inline: bool = False,
        key: Hashable = None,
        sized: bool = False,
        one: OneValue[T] | None = None,
    ) -> T:
        """`work` in one read transaction. `inline`: a lookup by key, one statement, which
        the runner may run on the event loop itself. `key`: names everything `work` depends
        on, so the runner may answer from memory while the database provably has not changed
        since it last ran it (the result must be immutable). `sized`: the result has a length
        (a listing page), which the runner's bound for such results counts. `one`: the same
        read as one statement's value, which a runner may run instead of `work`."""

    def version(self) -> Hashable | None:
        """A value that stays equal, read after read, only while the database provably has
        not changed (the same proof keyed reads are remembered on), read now; None where the
        runner keeps no such proof (then nothing may be remembered above it either)."""

    async def write(
        self, work: Callable[[Connection], T], *, durable: bool = True, turn: str | None = None
    ) -> T:
        """`work` in one write transaction. `durable=False`: a record the registry can lose
        to a power cut without harm (an upload in flight), committed without waiting for
        the disk where the backend allows it. `turn`: writes given the same one (a
        namespace) never run at the same time, on any replica, where the database would
        otherwise roll concurrent ones back for touching neighbouring keys."""

    async def has_schema(self) -> bool:
        """Whether the database was ever migrated (it has Alembic's revision table)."""

    async def migrate(self) -> None:
        """Bring the schema up to date where opening the store did not already."""

    def content_lock(self) -> AdvisoryContentLock | None:
        """The lock between publishing and sweeping content shared by every replica of this
        database, or None when the database is one node's own (a file lock does)."""

    async def close(self) -> None: ...
