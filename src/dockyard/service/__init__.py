"""Use cases of the registry, composed from a blob store and a metadata store; no HTTP here."""
