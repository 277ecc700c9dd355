"""Blob stores: content-addressed bytes and in-progress uploads, nothing relational."""

from dockyard.storage.base import BlobStore, StorageFullError

__all__ = ["BlobStore", "StorageFullError"]
