"""Metadata stores: repositories, links, manifests, tags and uploads, in SQL."""

from dockyard.metadata.base import (
    ManifestRecord,
    MetadataStore,
    Reference,
    UploadRecord,
)

__all__ = ["ManifestRecord", "MetadataStore", "Reference", "UploadRecord"]
