"""The metadata store over SQLAlchemy Core: one aggregate per concern, over one transaction runner.

Each aggregate (`blob_links`, `uploads`, `manifests`, `catalog`, `repository_removal`, `usage`,
`repository_info`, `tag_pages`, `cache_index`, `collection`, `content_graph`, `transfer`,
`shared_secrets`, `audit`, and the accounts of `sql_accounts`) is a module of named query
functions and a small class that hands them to the runner. The same queries run on both
backends; the runner (`sqlite_runner` or `postgres_runner`) is the only part that differs.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.metadata.audit import SQLAuditLog
from dockyard.metadata.blob_links import SQLBlobLinks
from dockyard.metadata.cache_index import SQLCacheIndex
from dockyard.metadata.catalog import SQLCatalog
from dockyard.metadata.collection import SQLCollection
from dockyard.metadata.content_graph import SQLContentGraph
from dockyard.metadata.events import SQLEvents
from dockyard.metadata.manifests import SQLManifests
from dockyard.metadata.postgres_runner import PostgresRunner, postgres_engine, postgres_url
from dockyard.metadata.quotas import SQLQuotas
from dockyard.metadata.repository_info import SQLRepositoryInfo
from dockyard.metadata.retention import SQLRetention
from dockyard.metadata.runner import TransactionObserver, TransactionRunner
from dockyard.metadata.shared_secrets import SQLSecrets
from dockyard.metadata.signature_policies import SQLSignaturePolicies
from dockyard.metadata.sql_accounts import SQLAccountStore
from dockyard.metadata.sqlite_runner import SQLiteRunner, sqlite_engine
from dockyard.metadata.statements import RepositoryIds
from dockyard.metadata.tag_pages import SQLTagPages
from dockyard.metadata.tag_rules import SQLTagRules
from dockyard.metadata.transfer import SQLTransfer
from dockyard.metadata.uploads import SQLUploads
from dockyard.metadata.usage import SQLRepositories

if TYPE_CHECKING:
    from dockyard.metadata.advisory_lock import AdvisoryContentLock
    from dockyard.metadata.diagnosis import SchemaState

__all__ = ["SQLMetadataStore", "postgres_url", "sqlite_engine"]


class SQLMetadataStore(
    SQLBlobLinks,
    SQLUploads,
    SQLManifests,
    SQLTagRules,
    SQLQuotas,
    SQLRetention,
    SQLSignaturePolicies,
    SQLCatalog,
    SQLRepositories,
    SQLRepositoryInfo,
    SQLTagPages,
    SQLCacheIndex,
    SQLCollection,
    SQLContentGraph,
    SQLAuditLog,
    SQLTransfer,
    SQLSecrets,
    SQLEvents,
):
    """Every aggregate of the `MetadataStore` protocol, sharing one runner and one memory of
    repository ids (forgotten whenever the runner abandons a write transaction)."""

    def __init__(self, runner: TransactionRunner) -> None:
        ids = RepositoryIds()
        runner.on_abort(ids.forget)
        super().__init__(runner, ids)
        self.accounts = SQLAccountStore(runner, ids)

    @classmethod
    def open_sqlite(cls, path: Path, *, migrate: bool = True) -> SQLMetadataStore:
        """`migrate=False` for server workers: the serving process migrated before starting
        them, and they then never load Alembic."""
        engine = sqlite_engine(path)
        if migrate:
            from dockyard.metadata.migrate import upgrade

            upgrade(engine)
        return cls(SQLiteRunner(engine, writer_lock=path.with_name(path.name + ".writer")))

    @classmethod
    def open_postgres(cls, url: str) -> SQLMetadataStore:
        """Connects lazily, in the event loop that first uses it; run `migrate` first."""
        return cls(PostgresRunner(postgres_engine(url)))

    @property
    def shared(self) -> bool:
        """True when several replicas may use this database at once."""
        return self.runner.shared

    async def migrate(self) -> None:
        await self.runner.migrate()

    async def has_schema(self) -> bool:
        return await self.runner.has_schema()

    def version(self) -> Hashable | None:
        """See `TransactionRunner.version`."""
        return self.runner.version()

    def observe_transactions(self, observer: TransactionObserver) -> None:
        self.runner.observe(observer)

    async def schema_state(self) -> SchemaState:
        from dockyard.metadata.diagnosis import schema_state

        return await self.runner.read(schema_state)

    def shared_content_lock(self) -> AdvisoryContentLock | None:
        return self.runner.content_lock()

    async def close(self) -> None:
        await self.runner.close()
