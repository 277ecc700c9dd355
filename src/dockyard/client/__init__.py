"""The daemonless client: registries, OCI layouts and archives, and copying between them."""
