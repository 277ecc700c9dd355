"""What each SQL aggregate of the metadata store holds: the runner and the repository ids.

The aggregates (blob links, uploads, manifests and tags, ...) are separate classes over the
same two objects; `SQLMetadataStore` combines them into the one store callers use.
"""

from __future__ import annotations

from dockyard.metadata.runner import TransactionRunner
from dockyard.metadata.statements import RepositoryIds


class SQLAggregate:
    def __init__(self, runner: TransactionRunner, ids: RepositoryIds) -> None:
        self.runner = runner
        self.ids = ids
